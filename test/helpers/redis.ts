/** A real Redis (Debian redis-server, installed by .ci/run) on a free loopback port, no persistence. */
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './process.ts';

export interface TestRedis {
  url: string;
  port: number;
  stop: () => Promise<void>;
  /** kill -9, as a crash or an OOM kill would. */
  kill: () => Promise<void>;
  /** Starts it again on the same port (empty: no persistence). */
  restart: () => Promise<void>;
}

async function launch(port: number, dir: string): Promise<void> {
  const started = spawnSync('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', '--daemonize', 'yes', '--dir', dir, '--pidfile', path.join(dir, 'redis.pid')], { encoding: 'utf8' });
  if (started.error) throw new Error(`redis-server is needed for this test (apt-get install redis-server; .ci/run does): ${started.error.message}`);
  if (started.status !== 0) throw new Error(`redis-server failed: ${started.stderr}${started.stdout}`);
  const ping = () => promisify(execFile)('redis-cli', ['-p', String(port), 'ping']).then(({ stdout }) => stdout.trim() === 'PONG', () => false);
  for (let i = 0; i < 100 && !(await ping()); i++) await new Promise((r) => setTimeout(r, 20));
}

export async function startRedis(): Promise<TestRedis> {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'redis-'));
  await launch(port, dir);
  const pidFile = path.join(dir, 'redis.pid');
  return {
    url: `redis://127.0.0.1:${port}/0`,
    port,
    stop: async () => {
      await promisify(execFile)('redis-cli', ['-p', String(port), 'shutdown', 'nosave']).catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    },
    kill: async () => {
      const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
      process.kill(pid, 'SIGKILL');
      for (let i = 0; i < 100; i++) {
        try {
          process.kill(pid, 0);
        } catch {
          break; // gone
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      fs.rmSync(pidFile, { force: true });
    },
    restart: () => launch(port, dir),
  };
}
