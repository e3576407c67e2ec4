/**
 * Resident memory of the Whisper runner process: idle (model loaded), after 1 and after 10
 * transcriptions of WAV (one request at a time).
 *   npx tsx bench/stt-runner-rss.ts MODEL WAV   (MALLOC_ARENA_MAX=2 in the environment reaches the runner)
 */
import { execSync } from 'node:child_process';
import fs from 'node:fs';
import { spawnService, waitForHealth } from '../test/helpers/process.ts';
import { freePort } from './support.ts';
const [model, wav] = [process.argv[2]!, process.argv[3]!];
const extra: Record<string, string> = process.env.MALLOC_ARENA_MAX ? { MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX } : {};
const svc = spawnService({ LOCAL_WHISPER_MODEL: model, STT_BACKEND: 'local', WHISPER_THREADS: '1', STT_PARALLEL: '1', GEMMA_MODEL: '/absent.gguf', LOG_LEVEL: 'warn', STT_RUNNER: 'process', ...extra }, await freePort(), { quiet: true });
await waitForHealth(svc.url, 120_000);
for (;;) {
  const r = (await (await fetch(`${svc.url}/health/ready`)).json()) as { capabilities: { stt: { status: string } } };
  if (r.capabilities.stt.status === 'ready') break;
  await new Promise((r) => setTimeout(r, 200));
}
// the runner: the service's child whose command line names the Whisper runner entry
const kids = execSync(`pgrep -P ${svc.child.pid} || true`).toString().split('\n').filter(Boolean).map(Number);
const runner = kids.find((p) => fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('stt-runner'))!;
const mib = (field: string) => Math.round(Number(/(\d+) kB/.exec(fs.readFileSync(`/proc/${runner}/status`, 'utf8').split('\n').find((l) => l.startsWith(field))!)![1]) / 1024);
const body = fs.readFileSync(wav);
const rows: Record<string, number> = { idle: mib('VmRSS') };
for (let i = 1; i <= 10; i++) {
  const form = new FormData();
  form.set('file', new Blob([body]), 'a.wav'); form.set('model', 'whisper-1');
  const res = await fetch(`${svc.url}/v1/audio/transcriptions`, { method: 'POST', body: form });
  await res.text();
  if (res.status !== 200) throw new Error(`status ${res.status}`);
  if (i === 1 || i === 10) rows[`after_${i}`] = mib('VmRSS');
}
rows.peak = mib('VmHWM');
console.log(JSON.stringify({ malloc_arena_max: process.env.MALLOC_ARENA_MAX ?? null, rss_mib: rows }));
svc.child.kill('SIGTERM');
process.exit(0);
