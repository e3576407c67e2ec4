/** Shared helpers for the benchmarks. */
import fs from 'node:fs';
import { findOnPath } from '../src/observability/gpu.ts';
import { tinyGemmaPath, tinyWhisperPath } from '../test/helpers/models.ts';
import { freePort, spawnService, waitForHealth, type ServiceProcess } from '../test/helpers/process.ts';

export { freePort, waitForHealth };

/** The middle value of `xs` (the upper middle for an even count). */
export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export function findTaskset(): string | undefined {
  return findOnPath('taskset');
}

/** Waits until GET /health/ready answers 200 (every configured capability ready); throws after `timeoutMs`. */
export async function waitForReady(url: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await fetch(`${url}/health/ready`)).status !== 200) {
    if (Date.now() > deadline) throw new Error(`the service at ${url} did not become ready within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface TinyService {
  service: ServiceProcess;
  url: string;
  port: number;
  /** The process's resident memory (VmRSS) or its peak (VmHWM), in MiB, from /proc. */
  rssMb: (field?: 'VmRSS' | 'VmHWM') => number;
  /** Open file descriptors of the process. */
  fds: () => number;
}

/**
 * A service process on every tiny model (tiny Gemma, tiny whisper, the embedded voice), no
 * partial transcripts, quiet logs; `env` overrides. Resolves once every capability is ready.
 */
export async function startTinyService(env: Record<string, string>): Promise<TinyService> {
  const port = await freePort();
  const service = spawnService(
    { GEMMA_MODEL: tinyGemmaPath(), LOCAL_WHISPER_MODEL: tinyWhisperPath(), TTS_BACKEND: 'embedded', LLM_PARALLEL: '4', STT_PARTIAL_INTERVAL_MS: '0', LOG_LEVEL: 'warn', ...env },
    port,
    { quiet: true },
  );
  await waitForHealth(service.url);
  await waitForReady(service.url, 30_000);
  const pid = service.child.pid!;
  return {
    service,
    url: service.url,
    port,
    rssMb: (field = 'VmRSS') => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024,
    fds: () => fs.readdirSync(`/proc/${pid}/fd`).length,
  };
}
