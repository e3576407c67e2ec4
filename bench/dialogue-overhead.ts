/**
 * Voice-to-voice overhead of the dialogue pipeline: for each turn (audio in, spoken reply out,
 * streamed over SSE), the client-observed time to the first audio.delta minus the time the models
 * themselves needed before that audio could exist (stt_ms + llm_first_sentence_ms +
 * tts_first_audio_ms, measured inside the same turn). What remains is ours: HTTP, decoding,
 * session I/O, queues, encoding. Real engines on the generated tiny models (tiny Gemma through
 * llama.cpp, tiny whisper through whisper.cpp) and the embedded voice, in a spawned service.
 * The same through /ws/dialogue: a synthesized spoken turn streamed in real time; from the
 * client receiving `speech_stopped` (the VAD's end of turn) to the first binary audio frame, minus
 * the same model times (the VAD's wait for silence is policy, VAD_SILENCE_MS, not overhead).
 * And through /v1/realtime (the OpenAI Realtime protocol on the same pipeline): the same speech at
 * 24 kHz as input_audio_buffer.append events, from `input_audio_buffer.speech_stopped` to the first
 * `response.output_audio.delta`, minus the model times the service logs for that response
 * (`realtime response done`), compared with /ws/dialogue's overhead (goal: within 5 ms, median).
 * Goal: ≤ 20 ms median. Prints JSON.
 *
 *   npm run bench:dialogue        (TURNS=20 to change)
 */
import WebSocket from 'ws';
import { tinyGemmaPath, tinyWhisperPath } from '../test/helpers/models.ts';
import { closeSpeech, speech } from '../test/helpers/speech.ts';
import { eventLog, streamPcm } from '../test/helpers/ws.ts';
import { appendPcm, openRealtime, speech24k } from '../test/helpers/realtime.ts';
import { wav } from '../test/helpers/audio.ts';
import { spawnService } from '../test/helpers/process.ts';
import { freePort, median, waitForHealth, waitForReady } from './support.ts';

const TURNS = Number(process.env.TURNS ?? 20);
const p95 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.95))]!;
const round = (x: number) => Math.round(x * 10) / 10;

const port = await freePort();
// info: the realtime route logs each response's model timings (`realtime response done`), which the realtime figure needs
const service = spawnService({ GEMMA_MODEL: tinyGemmaPath(), LOCAL_WHISPER_MODEL: tinyWhisperPath(), TTS_BACKEND: 'embedded', LOG_LEVEL: 'info' }, port);
await waitForHealth(service.url);
await waitForReady(service.url, 30_000);
const audio = wav(2).toString('base64');

interface Timings {
  stt_ms: number;
  llm_first_sentence_ms: number;
  tts_first_audio_ms: number;
  first_audio_ms: number;
  total_ms: number;
}

async function oneTurn(session: string): Promise<{ clientFirstAudio: number; timings: Timings }> {
  const started = performance.now();
  const res = await fetch(`${service.url}/v1/dialogue`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ audio_base64: audio, session_id: session, stream: true, format: 'pcm', language: 'en' }),
  });
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let clientFirstAudio = 0;
  let timings: Timings | undefined;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer += value;
    if (!clientFirstAudio && buffer.includes('event: audio.delta')) clientFirstAudio = performance.now() - started;
    const doneAt = buffer.indexOf('event: done');
    if (doneAt >= 0 && buffer.endsWith('\n\n')) timings = (JSON.parse(/data: (.*)/.exec(buffer.slice(doneAt))![1]!) as { timings: Timings }).timings;
  }
  if (!timings) throw new Error(`no done event (HTTP ${res.status}): ${buffer.slice(0, 300)}`);
  return { clientFirstAudio, timings };
}

for (let i = 0; i < 3; i++) await oneTurn(`warmup-${i}`);
const overhead: number[] = [];
const firstAudio: number[] = [];
const models: number[] = [];
for (let i = 0; i < TURNS; i++) {
  const { clientFirstAudio, timings } = await oneTurn(`bench-${i % 4}`); // sessions grow a little history, as real ones do
  const modelTime = timings.stt_ms + timings.llm_first_sentence_ms + timings.tts_first_audio_ms;
  overhead.push(clientFirstAudio - modelTime);
  firstAudio.push(clientFirstAudio);
  models.push(modelTime);
}

// --- /ws/dialogue
const spoken = await speech([{ silence: 0.3 }, 'What is the weather like today?', { silence: 0.7 }]);
const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/dialogue?session_id=ws-bench&response_modalities=text,audio`);
const log = eventLog(ws);
await new Promise((r) => ws.once('open', r));
await log.waitFor((e) => e.type === 'ready');
const wsOverhead: number[] = [];
const wsFirstAudio: number[] = [];
const WS_TURNS = Math.max(5, Math.round(TURNS / 2));
// /v1/realtime: the same speech at 24 kHz, turns interleaved with /ws/dialogue's so both see the same machine
const rt = await openRealtime(`ws://127.0.0.1:${port}`);
const spoken24k = await speech24k([{ silence: 0.3 }, 'What is the weather like today?', { silence: 0.7 }]);
const rtFirstAudio: number[] = [];
const rtOverhead: number[] = [];
/** The model timings the service logged for one realtime response. */
async function responseTimings(id: string): Promise<Timings> {
  for (let i = 0; i < 100; i++) {
    const line = service.output().split('\n').find((l) => l.includes(`"response_id":"${id}"`));
    if (line) return (JSON.parse(line) as { timings: Timings }).timings;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no log line for ${id}`);
}
for (let i = 0; i < WS_TURNS + 2; i++) {
  const before = log.events.length;
  const beforeAudio = log.audio.length;
  await streamPcm(ws, spoken, 16000, 1);
  const done = await log.waitFor((e) => e.type === 'reply.done' && log.events.indexOf(e) >= before, 30_000);
  const stopped = log.events.slice(before).find((e) => e.type === 'speech_stopped')!;
  const firstAudio = log.audio.slice(beforeAudio)[0]!;
  const t = done.timings as Timings;
  const rtBefore = rt.events.length;
  await appendPcm(rt.send, spoken24k, 24000, 1);
  await rt.waitFor((e) => e.type === 'response.done' && rt.events.indexOf(e) >= rtBefore, 30_000);
  const rtStopped = rt.events.slice(rtBefore).find((e) => e.type === 'input_audio_buffer.speech_stopped')!;
  const rtAudio = rt.events.slice(rtBefore).find((e) => e.type === 'response.output_audio.delta')!;
  if (i < 2) continue; // warm-up
  wsFirstAudio.push(firstAudio.at - stopped.at);
  wsOverhead.push(firstAudio.at - stopped.at - (t.stt_ms + t.llm_first_sentence_ms + t.tts_first_audio_ms));
  rtFirstAudio.push(rtAudio.at - rtStopped.at);
  const rtDone = rt.events.slice(rtBefore).find((e) => e.type === 'response.done')!;
  const rtTimings = await responseTimings((rtDone.response as { id: string }).id);
  rtOverhead.push(rtAudio.at - rtStopped.at - (rtTimings.stt_ms + rtTimings.llm_first_sentence_ms + rtTimings.tts_first_audio_ms));
}
ws.close();
rt.ws.close();
await closeSpeech();
service.child.kill();
console.log(
  JSON.stringify(
    {
      turns: TURNS,
      rest_sse: {
        client_first_audio_ms: { median: round(median(firstAudio)), p95: round(p95(firstAudio)) },
        model_time_ms: { median: round(median(models)), p95: round(p95(models)) },
        overhead_ms: { median: round(median(overhead)), p95: round(p95(overhead)) },
      },
      ws_dialogue: {
        turns: WS_TURNS,
        end_of_turn_to_first_audio_ms: { median: round(median(wsFirstAudio)), p95: round(p95(wsFirstAudio)) },
        overhead_ms: { median: round(median(wsOverhead)), p95: round(p95(wsOverhead)) },
      },
      realtime: {
        turns: WS_TURNS,
        end_of_turn_to_first_audio_ms: { median: round(median(rtFirstAudio)), p95: round(p95(rtFirstAudio)) },
        overhead_ms: { median: round(median(rtOverhead)), p95: round(p95(rtOverhead)) },
        overhead_vs_ws_dialogue_median_ms: round(median(rtOverhead) - median(wsOverhead)),
        goal_vs_ws_dialogue_ms: 5,
      },
      goal_overhead_median_ms: 20,
    },
    null,
    2,
  ),
);
process.exit(0);
