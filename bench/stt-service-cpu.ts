/**
 * CPU time (user+sys of the service process, its threads and its runner child) and wall time per
 * /v1/audio/transcriptions request: CPU time stays comparable on a loaded machine where wall time does not.
 *   npx tsx bench/stt-service-cpu.ts MODEL WAV process|inline [ROUNDS]
 */
import { execSync } from 'node:child_process';
import fs from 'node:fs';
import { spawnService, waitForHealth } from '../test/helpers/process.ts';
import { freePort } from './support.ts';
const [model, wav, runner, rounds] = [process.argv[2]!, process.argv[3]!, process.argv[4]!, Number(process.argv[5] ?? 4)];
const TICK = Number(execSync('getconf CLK_TCK').toString());
const tree = (pid: number): number[] => {
  const kids = execSync(`pgrep -P ${pid} || true`).toString().split('\n').filter(Boolean).map(Number);
  return [pid, ...kids.flatMap(tree)];
};
const cpuOf = (pids: number[]) => pids.reduce((s, p) => {
  try { const f = fs.readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]!.split(' '); return s + (Number(f[11]) + Number(f[12])) / TICK; } catch { return s; }
}, 0);
const port = await freePort();
const svc = spawnService({ LOCAL_WHISPER_MODEL: model, STT_BACKEND: 'local', WHISPER_THREADS: '1', STT_PARALLEL: '1', GEMMA_MODEL: '/absent.gguf', LOG_LEVEL: 'warn', STT_RUNNER: runner }, port, { quiet: true });
await waitForHealth(svc.url, 120_000);
for (;;) {
  const r = (await (await fetch(`${svc.url}/health/ready`)).json()) as { capabilities: { stt: { status: string } } };
  if (r.capabilities.stt.status === 'ready') break;
  await new Promise((r) => setTimeout(r, 200));
}
const body = fs.readFileSync(wav);
const rows = [];
for (let i = 0; i < rounds; i++) {
  const pids = tree(svc.child.pid!);
  const c0 = cpuOf(pids);
  const form = new FormData();
  form.set('file', new Blob([body]), 'a.wav'); form.set('model', 'whisper-1'); form.set('response_format', 'verbose_json');
  const t = performance.now();
  const res = await fetch(`${svc.url}/v1/audio/transcriptions`, { method: 'POST', body: form });
  await res.text();
  const ms = performance.now() - t;
  rows.push({ status: res.status, wall_ms: Math.round(ms), cpu_ms: Math.round((cpuOf(pids) - c0) * 1000), pids: pids.length });
}
console.log(JSON.stringify({ runner, rows }));
svc.child.kill('SIGTERM');
process.exit(0);
