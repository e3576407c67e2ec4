/**
 * Runs the real service as a child process: the compiled dist/main.js (what the Docker image runs)
 * when TEST_SERVICE_ENTRY=dist (scripts/run-tests.mjs builds it first: a start without tsx's loader
 * is about twice as quick, and the suite starts a hundred services), else src/main.ts through tsx,
 * so a test file run on its own always runs the source as it is.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { logWriter, recordEnvSecrets } from './test-logs.ts';

/**
 * Ports handed out by freePort, one lock file each: the kernel's free port is free until someone
 * binds it, and test files run two at a time (scripts/run-tests.mjs), so two files could be handed
 * the same port before either service listens. A lock older than ten minutes is stale (a run that
 * was killed): test processes bind their port within seconds.
 */
const PORT_LOCKS = path.join(os.tmpdir(), 'gemma-3-api-test-ports');
const STALE_LOCK_MS = 10 * 60_000;

/** A free loopback port that no other test process of this machine has been handed. */
export async function freePort(): Promise<number> {
  fs.mkdirSync(PORT_LOCKS, { recursive: true });
  for (;;) {
    const port = await kernelPort();
    const lock = path.join(PORT_LOCKS, String(port));
    try {
      fs.writeFileSync(lock, String(process.pid), { flag: 'wx' });
      return port;
    } catch {
      const age = Date.now() - (fs.statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? 0);
      if (age > STALE_LOCK_MS) fs.rmSync(lock, { force: true });
    }
  }
}

function kernelPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

export interface ServiceProcess {
  child: ChildProcess;
  url: string;
  output: () => string;
  exited: Promise<number | null>;
}

export function spawnService(env: Record<string, string>, port: number, options: { quiet?: boolean } = {}): ServiceProcess {
  let output = '';
  recordEnvSecrets(env);
  const keep = logWriter('service');
  const entry = process.env.TEST_SERVICE_ENTRY === 'dist' ? ['dist/main.js'] : ['--import', 'tsx', 'src/main.ts'];
  const child = spawn(process.execPath, entry, {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', HOST: '127.0.0.1', PORT: String(port), BROWSER_PORT: 'off', MODEL_DOWNLOAD: 'false', ...env },
    stdio: options.quiet ? 'ignore' : ['ignore', 'pipe', 'pipe'],
  });
  const collect = (d: Buffer) => {
    output += d.toString();
    keep(d.toString());
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, url: `http://127.0.0.1:${port}`, output: () => output, exited };
}

/** Polls /health/ready until every engine is ready; false when `timeoutMs` passed first. */
export async function waitForReady(url: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while ((await fetch(`${url}/health/ready`)).status !== 200) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
  return true;
}

// generous: a service started with tsx on a busy 2-core machine can take tens of seconds to listen; a
// healthy one returns at once, so the bound only decides how long a broken start takes to fail
export async function waitForHealth(url: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${url}/health`);
      if (res.ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`service at ${url} did not come up`);
}

/** A service process on a free port whose engines are all ready (throws with its last output otherwise). */
export async function spawnReadyService(env: Record<string, string>, readyTimeoutMs = 120_000): Promise<ServiceProcess> {
  const service = spawnService(env, await freePort());
  await waitForHealth(service.url, 60_000);
  if (!(await waitForReady(service.url, readyTimeoutMs))) {
    service.child.kill('SIGTERM');
    throw new Error(`not ready within ${readyTimeoutMs / 1000} s: ${service.output().slice(-2000)}`);
  }
  return service;
}

/** SIGTERM, and wait for the process to exit. */
export async function stopService(service: ServiceProcess | undefined): Promise<void> {
  if (!service) return;
  service.child.kill('SIGTERM');
  await service.exited;
}
