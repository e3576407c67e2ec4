/**
 * /health throughput of the full service (API keys on, JSON request logs at info, metrics) against
 * a bare Fastify app with one route, in the same run, alternating the two servers to cancel drift.
 *
 * Two figures, because on a 2-core machine the load generator competes with the server:
 * - `req_per_s`: what autocannon measured (server pinned to core 1, autocannon to core 0 when
 *   `taskset` exists, so the client may be the limit and the ratio flatters the server);
 * - `server_cpu_us_per_req`: server CPU time (utime+stime from /proc) per request, i.e. what each
 *   request costs the server; `capacity_ratio` = bare cost / full cost = the req/s ratio when the
 *   server has a core to itself and is the bottleneck. Goal: ratio >= 0.8.
 *
 *   npm run bench:health        (ROUNDS=6 DURATION=3 CONNECTIONS=10 to change)
 */
import autocannon from 'autocannon';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { freePort, findTaskset, waitForHealth } from './support.ts';

const ROUNDS = Number(process.env.ROUNDS ?? 6);
const DURATION = Number(process.env.DURATION ?? 3);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 10);
const TICK_US = 1e6 / 100; // USER_HZ: clock ticks per second on Linux

const taskset = findTaskset();
const pinned = taskset !== undefined && os.availableParallelism() >= 2;

function start(file: string, port: number, env: Record<string, string>): ChildProcess {
  const args = ['--import', 'tsx', file];
  const [cmd, argv] = pinned ? [taskset!, ['-c', '1', process.execPath, ...args]] : [process.execPath, args];
  return spawn(cmd, argv, { env: { ...process.env, PORT: String(port), BROWSER_PORT: 'off', HOST: '127.0.0.1', ...env }, stdio: 'ignore' });
}

function cpuTicks(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

async function measure(url: string, pid: number, headers: Record<string, string>) {
  const before = cpuTicks(pid);
  const result = await autocannon({ url: `${url}/health`, connections: CONNECTIONS, duration: DURATION, headers });
  const cpuUs = (cpuTicks(pid) - before) * TICK_US;
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`${url}: ${result.non2xx} non-2xx, ${result.errors} errors`);
  return { reqPerS: result.requests.average, cpuUsPerReq: cpuUs / result.requests.total };
}

if (pinned) spawn(taskset!, ['-p', '-c', '0', String(process.pid)], { stdio: 'ignore' });
const ports = { bare: await freePort(), full: await freePort() };
const bare = start('bench/bare-server.ts', ports.bare, {});
const full = start('src/main.ts', ports.full, { API_KEY_ENABLED: 'true', API_KEYS: 'bench-key', LOG_LEVEL: 'info', GPU_METRICS: 'off', MODEL_DOWNLOAD: 'false' });
try {
  const bareUrl = `http://127.0.0.1:${ports.bare}`;
  const fullUrl = `http://127.0.0.1:${ports.full}`;
  await waitForHealth(bareUrl);
  await waitForHealth(fullUrl);
  for (const url of [bareUrl, fullUrl]) await autocannon({ url: `${url}/health`, connections: CONNECTIONS, duration: 2 }); // warm-up (JIT)
  const rounds: Record<'bare_req_per_s' | 'full_req_per_s' | 'bare_cpu_us_per_req' | 'full_cpu_us_per_req', number>[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const b = await measure(bareUrl, bare.pid!, {});
    const f = await measure(fullUrl, full.pid!, { 'X-API-Key': 'bench-key' });
    rounds.push({ bare_req_per_s: Math.round(b.reqPerS), full_req_per_s: Math.round(f.reqPerS), bare_cpu_us_per_req: +b.cpuUsPerReq.toFixed(2), full_cpu_us_per_req: +f.cpuUsPerReq.toFixed(2) });
  }
  const total = (k: keyof (typeof rounds)[number]) => rounds.reduce((s, r) => s + r[k], 0);
  const round3 = (n: number) => Math.round(n * 1000) / 1000;
  console.log(
    JSON.stringify(
      {
        benchmark: 'health-overhead',
        pinned,
        connections: CONNECTIONS,
        duration_s: DURATION,
        rounds,
        req_per_s: { bare: Math.round(total('bare_req_per_s') / ROUNDS), full: Math.round(total('full_req_per_s') / ROUNDS), ratio: round3(total('full_req_per_s') / total('bare_req_per_s')) },
        server_cpu_us_per_req: { bare: round3(total('bare_cpu_us_per_req') / ROUNDS), full: round3(total('full_cpu_us_per_req') / ROUNDS) },
        capacity_ratio: round3(total('bare_cpu_us_per_req') / total('full_cpu_us_per_req')),
        goal: 'ratio >= 0.8',
      },
      null,
      2,
    ),
  );
} finally {
  bare.kill('SIGTERM');
  full.kill('SIGTERM');
}
