/**
 * Soak: a real service process on the tiny models (tiny Gemma, tiny whisper, the embedded voice)
 * takes TOTAL mixed requests (default 10,000) from CONCURRENCY clients: generations, streamed chat
 * completions, syntheses, transcriptions, health/models/metrics reads, bad JSON (400s) and
 * /ws/tts sessions. Every CHECKPOINT requests the load pauses for a moment and the service's RSS
 * and open file descriptors are read from /proc. The baseline is the same process after WARMUP
 * requests (caches, pools and JIT settled); goal: RSS growth after it < 5 % and no fd growth.
 * Prints JSON.
 *
 *   npm run bench:soak            (TOTAL=10000 CONCURRENCY=8 WARMUP=2000 CHECKPOINT=1000)
 */
import WebSocket from 'ws';
import { wav } from '../test/helpers/audio.ts';
import { startTinyService } from './support.ts';

const TOTAL = Number(process.env.TOTAL ?? 10_000);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 8);
const WARMUP = Number(process.env.WARMUP ?? 2000);
const CHECKPOINT = Number(process.env.CHECKPOINT ?? 1000);

const { service, url, port, rssMb, fds } = await startTinyService({ LLM_QUEUE_SIZE: '100', STT_QUEUE_SIZE: '100', TTS_QUEUE_SIZE: '100' });

const clip = wav(1);
// no pooled keep-alive connections: the open descriptors counted at a checkpoint are the service's own
const CLOSE = { connection: 'close' };
const json = (path: string, body: unknown) => fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...CLOSE }, body: typeof body === 'string' ? body : JSON.stringify(body) });

/** One request of each kind; resolves to whether the answer was the expected one. */
const kinds: { name: string; weight: number; run: () => Promise<boolean> }[] = [
  { name: 'generate', weight: 30, run: async () => (await json('/v1/generate', { prompt: 'Hi', max_tokens: 6 }).then(drain)) === 200 },
  {
    name: 'chat_stream',
    weight: 10,
    run: async () => {
      const res = await json('/v1/chat/completions', { model: 'gemma', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 6, stream: true });
      return res.status === 200 && (await res.text()).includes('[DONE]');
    },
  },
  { name: 'tts', weight: 20, run: async () => (await json('/v1/text-to-speech', { text: 'Soak test sentence.', format: 'pcm', stream: true }).then(drain)) === 200 },
  {
    name: 'stt',
    weight: 10,
    run: async () => {
      const form = new FormData();
      form.append('file', new Blob([clip], { type: 'audio/wav' }), 'clip.wav');
      form.append('model', 'whisper-1');
      return (await fetch(`${url}/v1/audio/transcriptions`, { method: 'POST', body: form, headers: CLOSE }).then(drain)) === 200;
    },
  },
  { name: 'reads', weight: 15, run: async () => (await Promise.all(['/health', '/health/ready', '/v1/models', '/metrics'].map((p) => fetch(`${url}${p}`, { headers: CLOSE }).then(drain)))).every((s) => s === 200) },
  { name: 'bad_json', weight: 10, run: async () => (await json('/v1/generate', '{"prompt": ').then(drain)) === 400 },
  { name: 'ws_tts', weight: 5, run: wsTts },
];

async function drain(res: Response): Promise<number> {
  await res.arrayBuffer();
  return res.status;
}

function wsTts(): Promise<boolean> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/tts?format=pcm`);
    let audio = 0;
    const timer = setTimeout(() => {
      ws.terminate();
      resolve(false);
    }, 30_000);
    ws.on('message', (data, binary) => {
      if (binary) return void (audio += (data as Buffer).length);
      const event = JSON.parse(data.toString()) as { type: string };
      if (event.type === 'ready') {
        ws.send(JSON.stringify({ type: 'text', text: 'A soak sentence over the socket.' }));
        ws.send(JSON.stringify({ type: 'flush' }));
      }
      if (event.type === 'end') ws.close();
      if (event.type === 'error') ws.close();
    });
    ws.on('close', () => {
      clearTimeout(timer);
      resolve(audio > 0);
    });
    ws.on('error', () => undefined);
  });
}

const schedule: number[] = [];
kinds.forEach((k, i) => schedule.push(...Array<number>(k.weight).fill(i)));
const counts = kinds.map(() => ({ ok: 0, failed: 0 }));
const samples: { requests: number; rss_mb: number; fds: number }[] = [];
const sample = async (requests: number) => {
  await new Promise((r) => setTimeout(r, 1000)); // let the event loop and GC settle
  samples.push({ requests, rss_mb: Math.round(rssMb() * 10) / 10, fds: fds() });
};

let next = 0;
const started = performance.now();
await sample(0);
while (next < TOTAL) {
  const until = Math.min(TOTAL, next + CHECKPOINT);
  const worker = async () => {
    while (next < until) {
      const n = next++;
      const kind = schedule[(n * 7919) % schedule.length]!; // a fixed, well-mixed order
      const ok = await kinds[kind]!.run().catch(() => false);
      counts[kind]![ok ? 'ok' : 'failed']++;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  await sample(until);
}
const seconds = (performance.now() - started) / 1000;

const warm = samples.find((s) => s.requests >= WARMUP) ?? samples[0]!;
const last = samples[samples.length - 1]!;
const afterWarm = samples.filter((s) => s.requests >= warm.requests);
const result = {
  bench: 'soak',
  requests: TOTAL,
  concurrency: CONCURRENCY,
  seconds: Math.round(seconds),
  per_second: Math.round(TOTAL / seconds),
  by_kind: Object.fromEntries(kinds.map((k, i) => [k.name, counts[i]])),
  failed: counts.reduce((n, c) => n + c.failed, 0),
  rss_mb: { start: samples[0]!.rss_mb, after_warmup: warm.rss_mb, end: last.rss_mb, max_after_warmup: Math.max(...afterWarm.map((s) => s.rss_mb)) },
  rss_growth_after_warmup_pct: Math.round(((last.rss_mb - warm.rss_mb) / warm.rss_mb) * 1000) / 10,
  fds: { after_warmup: warm.fds, end: last.fds, max: Math.max(...afterWarm.map((s) => s.fds)) },
  checkpoints: samples,
  goal: 'rss_growth_after_warmup_pct < 5 and fds.end <= fds.after_warmup',
};
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
service.child.kill('SIGTERM');
await service.exited;
