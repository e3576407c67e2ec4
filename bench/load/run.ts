/**
 * Load test on loopback: a real service process on the tiny models (tiny Gemma, tiny whisper, the
 * embedded voice) under N concurrent clients per phase, each phase bounded in time:
 *   1. N concurrent HTTP generations (autocannon, POST /v1/generate)
 *   2. N concurrent /ws/tts sessions (sentence + flush, wait for the end, repeat)
 *   3. N concurrent /ws/stt sessions (2.6 s of speech streamed in real time, wait for the final)
 *   4. N concurrent /ws/dialogue sessions (a spoken turn in real time, wait for reply.done)
 * Prints JSON: completed operations, throughput, p50/p95/p99 latency, errors, the service's RSS.
 * Queues are sized so that overload shows as latency, not as 429s (set *_QUEUE_SIZE lower to see
 * the 429 path). Goal: 0 errors at N = 50 on this 2-core machine.
 *
 *   npm run bench:load            (N=50 SECONDS=15 to change; PHASES=http,tts,stt,dialogue)
 */
import autocannon from 'autocannon';
import WebSocket from 'ws';
import { closeSpeech, speech } from '../../test/helpers/speech.ts';
import { startTinyService } from '../support.ts';

const N = Number(process.env.N ?? 50);
const SECONDS = Number(process.env.SECONDS ?? 15);
const PHASES = (process.env.PHASES ?? 'http,tts,stt,dialogue').split(',');

const { service, port, rssMb: rss } = await startTinyService({ LLM_QUEUE_SIZE: '1000', STT_QUEUE_SIZE: '1000', TTS_PARALLEL: '8', TTS_QUEUE_SIZE: '1000' });
const rssMb = (field: 'VmRSS' | 'VmHWM') => Math.round(rss(field));
const startRss = rssMb('VmRSS');

const pct = (xs: number[], p: number) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]! : null);
const summary = (latencies: number[], errors: number, seconds: number, extra: object = {}) => ({
  completed: latencies.length,
  per_second: Math.round((latencies.length / seconds) * 10) / 10,
  latency_ms: { p50: round(pct(latencies, 0.5)), p95: round(pct(latencies, 0.95)), p99: round(pct(latencies, 0.99)) },
  errors,
  rss_mb_after: rssMb('VmRSS'),
  ...extra,
});
const round = (x: number | null) => (x === null ? null : Math.round(x));

const ws = `ws://127.0.0.1:${port}`;
const results: Record<string, unknown> = { n: N, seconds_per_phase: SECONDS, rss_mb_at_start: startRss };
const pcm = PHASES.some((p) => p === 'stt' || p === 'dialogue') ? await speech([{ silence: 0.2 }, 'What is the weather like today?', { silence: 0.8 }]) : new Int16Array();

/** Runs `session` in N parallel loops until the phase ends; each loop iteration is one operation. */
async function sessions(open: () => WebSocket, turn: (socket: WebSocket) => Promise<number>): Promise<{ latencies: number[]; errors: number; errorSamples: string[] }> {
  const latencies: number[] = [];
  let errors = 0;
  const errorSamples: string[] = [];
  const end = Date.now() + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: N }, async () => {
      const socket = open();
      socket.on('message', (data, isBinary) => {
        if (!isBinary && /"type":"error"/.test(data.toString())) {
          errors++;
          if (errorSamples.length < 3) errorSamples.push(data.toString().slice(0, 200));
        }
      });
      await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject)).catch(() => errors++);
      while (Date.now() < end && socket.readyState === WebSocket.OPEN) {
        try {
          latencies.push(await turn(socket));
        } catch (error) {
          errors++;
          if (errorSamples.length < 3) errorSamples.push(String(error));
        }
      }
      socket.close();
    }),
  );
  return { latencies, errors, errorSamples };
}

function next(socket: WebSocket, test: (e: { type: string }) => boolean, timeoutMs = 120_000): Promise<{ type: string; [k: string]: unknown }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off('message', on);
      reject(new Error('timed out waiting for an event'));
    }, timeoutMs);
    const on = (data: WebSocket.RawData, isBinary: boolean) => {
      if (isBinary) return;
      const e = JSON.parse(data.toString()) as { type: string };
      if (test(e)) {
        clearTimeout(timer);
        socket.off('message', on);
        resolve(e);
      }
    };
    socket.on('message', on);
  });
}

async function streamRealTime(socket: WebSocket): Promise<number> {
  const frame = 320;
  const started = performance.now();
  for (let i = 0, n = 0; i < pcm.length; i += frame, n++) {
    socket.send(Buffer.from(pcm.buffer, pcm.byteOffset + i * 2, Math.min(frame, pcm.length - i) * 2));
    const wait = started + (n + 1) * 20 - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  return performance.now();
}

if (PHASES.includes('http')) {
  const r = await autocannon({
    url: `${service.url}/v1/generate`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'Say hello.', max_tokens: 16 }),
    connections: N,
    duration: SECONDS,
  });
  results.http_generate = {
    completed: r.requests.total,
    per_second: r.requests.average,
    latency_ms: { p50: r.latency.p50, p95: r.latency.p97_5, p99: r.latency.p99 },
    errors: r.errors + r.timeouts + r.non2xx,
    rss_mb_after: rssMb('VmRSS'),
    note: 'p95 column is autocannon\'s p97.5',
  };
}

if (PHASES.includes('tts')) {
  const r = await sessions(
    () => new WebSocket(`${ws}/ws/tts`),
    async (socket) => {
      const started = performance.now();
      const first = new Promise<number>((resolve) => socket.once('message', function onFirst(this: WebSocket, _d, isBinary) {
        if (isBinary) resolve(performance.now() - started);
        else socket.once('message', onFirst);
      }));
      socket.send(JSON.stringify({ type: 'text', text: 'The quick brown fox jumps over the lazy dog.' }));
      socket.send(JSON.stringify({ type: 'flush' }));
      await next(socket, (e) => e.type === 'end');
      return first;
    },
  );
  results.ws_tts = summary(r.latencies, r.errors, SECONDS, { latency_is: 'text sent → first audio frame', error_samples: r.errorSamples });
}

if (PHASES.includes('stt')) {
  const r = await sessions(
    () => new WebSocket(`${ws}/ws/stt`),
    async (socket) => {
      const final = next(socket, (e) => e.type === 'transcript.final');
      const sentAll = await streamRealTime(socket);
      await final;
      return performance.now() - sentAll;
    },
  );
  results.ws_stt = summary(r.latencies, r.errors, SECONDS, { latency_is: 'end of audio sent → transcript.final (includes VAD_SILENCE_MS)', error_samples: r.errorSamples });
}

if (PHASES.includes('dialogue')) {
  const r = await sessions(
    () => new WebSocket(`${ws}/ws/dialogue?response_modalities=text,audio`),
    async (socket) => {
      const done = next(socket, (e) => e.type === 'reply.done');
      const sentAll = await streamRealTime(socket);
      await done;
      return performance.now() - sentAll;
    },
  );
  results.ws_dialogue = summary(r.latencies, r.errors, SECONDS, { latency_is: 'end of audio sent → reply.done', error_samples: r.errorSamples });
}

results.rss_mb_peak = rssMb('VmHWM');
results.service_alive = (await fetch(`${service.url}/health`)).ok;
service.child.kill();
await closeSpeech();
console.log(JSON.stringify(results, null, 2));
process.exit(0);
