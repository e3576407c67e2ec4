/**
 * Gateway memory under concurrent hour-long uploads (finding 5 of the attack review): N clients
 * each POST the same 1 h FLAC (silence with a 0.5 s tone every 5 min: ~700 KB on the wire, 230 MB
 * decoded) to /v1/audio/transcriptions at once, with vad_filter=true so Whisper's share stays small.
 * Prints one JSON line per N: statuses, the gateway's peak RSS (VmHWM), its RSS 5 s / 20 s / 40 s
 * after the last answer (decode threads exit after 30 s idle), and the slowest /health.
 *
 *   npx tsx bench/audio-memory.ts          (N=6,12 to change; extra service env as ENV='A=1 B=2')
 *
 * Run from another checkout's root (cwd) to measure that checkout's service (before/after).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startTinyService } from './support.ts';

const COUNTS = (process.env.N ?? '6,12').split(',').map(Number);
const EXTRA = Object.fromEntries((process.env.ENV ?? '').split(/\s+/).filter(Boolean).map((kv) => kv.split('=') as [string, string]));

function sparseHour(): Buffer {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sparse-'));
  const out = path.join(dir, 'sparse.flac');
  const made = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'sine=frequency=300:sample_rate=16000:duration=3600', '-af', "volume=volume=0:enable='gte(mod(t,300),0.5)'", '-c:a', 'flac', '-y', out]);
  if (made.status !== 0) throw new Error(`ffmpeg: ${made.stderr?.toString()}`);
  const flac = fs.readFileSync(out);
  fs.rmSync(dir, { recursive: true, force: true });
  return flac;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function run(n: number, flac: Buffer): Promise<Record<string, unknown>> {
  const tiny = await startTinyService({ MAX_AUDIO_SECONDS: '3600', STT_QUEUE_SIZE: '64', ...EXTRA });
  try {
    const idleBefore = Math.round(tiny.rssMb());
    let slowestHealth = 0;
    let probing = true;
    const prober = (async () => {
      while (probing) {
        const t = performance.now();
        await fetch(`${tiny.url}/health`).then((r) => r.arrayBuffer());
        slowestHealth = Math.max(slowestHealth, performance.now() - t);
        await sleep(100);
      }
    })();
    const started = performance.now();
    const statuses = await Promise.all(
      Array.from({ length: n }, async () => {
        const form = new FormData();
        form.append('file', new Blob([flac]), 'sparse.flac');
        form.append('vad_filter', 'true');
        const res = await fetch(`${tiny.url}/v1/audio/transcriptions`, { method: 'POST', body: form, signal: AbortSignal.timeout(600_000) });
        const body = (await res.json()) as { error?: { code?: string } };
        return res.status === 200 ? '200' : `${res.status} ${body.error?.code ?? ''}`;
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    probing = false;
    await prober;
    const peak = Math.round(tiny.rssMb('VmHWM'));
    const after: Record<string, number> = {};
    for (const [label, wait] of [['5s', 5000], ['20s', 15000], ['40s', 20000]] as const) {
      await sleep(wait);
      after[label] = Math.round(tiny.rssMb());
    }
    const counts: Record<string, number> = {};
    for (const s of statuses) counts[s] = (counts[s] ?? 0) + 1;
    return { n, env: EXTRA, statuses: counts, seconds: +seconds.toFixed(1), rss_idle_before_mb: idleBefore, rss_peak_mb: peak, rss_after_mb: after, slowest_health_ms: Math.round(slowestHealth) };
  } finally {
    tiny.service.child.kill('SIGTERM');
    await tiny.service.exited;
  }
}

const flac = sparseHour();
for (const n of COUNTS) console.log(JSON.stringify(await run(n, flac)));
