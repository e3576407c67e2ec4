/**
 * TTS latency. Prints JSON.
 *
 * 1. Embedded voice (eSpeak NG): time to the first audio chunk from the raw engine in this process
 *    (the baseline), through streaming POST /v1/text-to-speech (time to first body byte) and
 *    through /ws/tts (text + flush → first binary frame), alternating, RUNS each; real-time factor.
 *    Goal: ≤ 60 ms to first audio on the service surfaces.
 * 2. OpenAudio path: a fish-speech stand-in (test/fakes/fish-speech.ts) called directly vs through
 *    the gateway (pcm at the upstream's own rate, so no resampling), first byte and last byte.
 *    Goal: ≤ 5 ms added.
 *
 *   npm run bench:tts        (RUNS=20 to change)
 */
import pino from 'pino';
import WebSocket from 'ws';
import { encode } from '@msgpack/msgpack';
import { EmbeddedEspeakEngine, ESPEAK_SAMPLE_RATE } from '../src/engines/tts/embedded-espeak.ts';
import { FISH_SAMPLE_RATE, startFakeFishSpeech } from '../test/fakes/fish-speech.ts';
import { spawnService } from '../test/helpers/process.ts';
import { freePort, waitForHealth } from './support.ts';

const RUNS = Number(process.env.RUNS ?? 20);
const SENTENCE = 'The quick brown fox jumps over the lazy dog, and then it runs away.';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const p95 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.95))]!;
const round = (x: number) => Math.round(x * 100) / 100;
const stats = (xs: number[]) => ({ median_ms: round(median(xs)), p95_ms: round(p95(xs)) });

// --- 1. embedded voice
const engine = new EmbeddedEspeakEngine({ workers: 1, defaultVoice: 'en-us' }, pino({ level: 'silent' }));
await engine.load();
async function rawFirst(): Promise<{ first: number; total: number; seconds: number }> {
  const started = performance.now();
  let first = 0;
  let samples = 0;
  for await (const chunk of engine.synthesize({ text: SENTENCE }, new AbortController().signal)) {
    if (!first) first = performance.now() - started;
    samples += chunk.samples.length;
  }
  return { first, total: performance.now() - started, seconds: samples / ESPEAK_SAMPLE_RATE };
}

const port = await freePort();
const service = spawnService({ TTS_BACKEND: 'embedded', GEMMA_MODEL: '/absent.gguf', ENABLE_LOCAL_WHISPER: 'false', LOG_LEVEL: 'warn' }, port, { quiet: true });
await waitForHealth(service.url);
for (let i = 0; i < 50 && (await fetch(`${service.url}/health/ready`)).status !== 200; i++) await new Promise((r) => setTimeout(r, 100));

async function restFirst(url: string, body: object): Promise<{ first: number; total: number }> {
  const started = performance.now();
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const reader = res.body!.getReader();
  let first = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (!first && value.length) first = performance.now() - started;
  }
  if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
  return { first, total: performance.now() - started };
}

const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/tts`);
await new Promise((resolve) => ws.once('message', resolve)); // ready
async function wsFirst(): Promise<number> {
  return new Promise((resolve) => {
    let started = 0;
    let first = 0;
    const onMessage = (data: WebSocket.RawData, isBinary: boolean) => {
      if (isBinary && !first) first = performance.now() - started;
      if (!isBinary && JSON.parse(data.toString()).type === 'end') {
        ws.off('message', onMessage);
        resolve(first);
      }
    };
    ws.on('message', onMessage);
    started = performance.now();
    ws.send(JSON.stringify({ type: 'text', text: SENTENCE }));
    ws.send(JSON.stringify({ type: 'flush' }));
  });
}

const raw: number[] = [];
const rtf: number[] = [];
const rest: number[] = [];
const restWav: number[] = [];
const socket: number[] = [];
for (let i = 0; i < 3; i++) {
  await rawFirst();
  await restFirst(`${service.url}/v1/text-to-speech`, { text: SENTENCE, stream: true, format: 'pcm' });
  await wsFirst();
}
for (let i = 0; i < RUNS; i++) {
  const r = await rawFirst();
  raw.push(r.first);
  rtf.push(r.total / 1000 / r.seconds);
  rest.push((await restFirst(`${service.url}/v1/text-to-speech`, { text: SENTENCE, stream: true, format: 'pcm' })).first);
  restWav.push((await restFirst(`${service.url}/v1/text-to-speech`, { text: SENTENCE, stream: true, format: 'wav', sample_rate: ESPEAK_SAMPLE_RATE })).first);
  socket.push(await wsFirst());
}
ws.close();
service.child.kill();
await engine.close();

// --- 2. OpenAudio path
const fake = await startFakeFishSpeech();
const gatewayPort = await freePort();
const gateway = spawnService({ TTS_BACKEND: 'openaudio', OPENAUDIO_API_BASE: fake.url, GEMMA_MODEL: '/absent.gguf', ENABLE_LOCAL_WHISPER: 'false', LOG_LEVEL: 'warn' }, gatewayPort, { quiet: true });
await waitForHealth(gateway.url);
for (let i = 0; i < 50 && (await fetch(`${gateway.url}/health/ready`)).status !== 200; i++) await new Promise((r) => setTimeout(r, 100));
const longText = `${SENTENCE} ${SENTENCE} ${SENTENCE} ${SENTENCE}`;

async function direct(): Promise<{ first: number; total: number }> {
  const started = performance.now();
  const res = await fetch(`${fake.url}/v1/tts`, { method: 'POST', headers: { 'content-type': 'application/msgpack' }, body: encode({ text: longText, format: 'wav', streaming: true, chunk_length: 100 }) });
  const reader = res.body!.getReader();
  let seen = 0;
  let first = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    seen += value.length;
    if (!first && seen > 44) first = performance.now() - started; // first PCM after the header
  }
  return { first, total: performance.now() - started };
}
const viaGateway = () => restFirst(`${gateway.url}/v1/text-to-speech`, { text: longText, stream: true, format: 'pcm', sample_rate: FISH_SAMPLE_RATE, chunk_length: 100 });
const addedFirst: number[] = [];
const addedTotal: number[] = [];
const directFirst: number[] = [];
for (let i = 0; i < 3; i++) {
  await direct();
  await viaGateway();
}
for (let i = 0; i < RUNS; i++) {
  const d = await direct();
  const g = await viaGateway();
  directFirst.push(d.first);
  addedFirst.push(g.first - d.first);
  addedTotal.push(g.total - d.total);
}
gateway.child.kill();
await fake.close();

console.log(
  JSON.stringify(
    {
      runs: RUNS,
      embedded_first_audio: {
        raw_engine: stats(raw),
        rest_stream_pcm_24k: stats(rest),
        rest_stream_wav_native_rate: stats(restWav),
        ws_tts_pcm_24k: stats(socket),
        goal_ms: 60,
      },
      embedded_real_time_factor: round(median(rtf) * 1000) / 1000,
      openaudio_path: { direct_first_pcm: stats(directFirst), added_first_byte: stats(addedFirst), added_last_byte: stats(addedTotal), goal_ms: 5 },
    },
    null,
    2,
  ),
);
process.exit(0);
