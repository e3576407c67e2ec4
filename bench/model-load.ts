/**
 * The first request to an unloaded model (runner start + model load + answer) against the same
 * request to the loaded model, for the LLM and the Whisper runner, on the tiny models, as JSON.
 * Each round unloads the model (POST /v1/models/{id}/unload: its runner exits), then times one
 * request (cold) and the next (warm). Chat: 8 tokens; transcription: 2 s of audio.
 *
 *   npm run bench:model-load     (ROUNDS=5 THREADS=1)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { wav } from '../test/helpers/audio.ts';
import { tinyGemmaPath, tinyWhisperPath } from '../test/helpers/models.ts';
import { median, startTinyService } from './support.ts';

const ROUNDS = Number(process.env.ROUNDS ?? 5);
const THREADS = Number(process.env.THREADS ?? 1);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-model-load-'));
const file = path.join(dir, 'models.json');
// the default of each capability stays loaded; the second is the one unloaded and loaded again
fs.writeFileSync(
  file,
  JSON.stringify({
    llm: [
      { id: 'default', model: tinyGemmaPath(), context: 512, parallel: 1, threads: THREADS },
      { id: 'cold-llm', model: tinyGemmaPath(), context: 512, parallel: 1, threads: THREADS, preload: false },
    ],
    stt: [
      { id: 'whisper', model: tinyWhisperPath(), threads: THREADS },
      { id: 'cold-whisper', model: tinyWhisperPath(), threads: THREADS, preload: false },
    ],
  }),
);
const tiny = await startTinyService({ MODELS_FILE: file, LLM_DEVICE: 'cpu', STT_BACKEND: 'local', STT_DEVICE: 'cpu' });
const audio = wav(2);

async function timed(request: () => Promise<Response>): Promise<number> {
  const started = performance.now();
  const res = await request();
  if (res.status !== 200) throw new Error(`${res.status} ${await res.text()}`);
  await res.arrayBuffer();
  return performance.now() - started;
}

const chat = () => fetch(`${tiny.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'cold-llm', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 8 }) });
const transcribe = () => {
  const form = new FormData();
  form.append('file', new Blob([new Uint8Array(audio)], { type: 'audio/wav' }), 'a.wav');
  form.append('model', 'cold-whisper');
  return fetch(`${tiny.url}/v1/speech-to-text`, { method: 'POST', body: form });
};

const stats = (xs: number[]) => ({ median: +median(xs).toFixed(1), min: +Math.min(...xs).toFixed(1), max: +Math.max(...xs).toFixed(1) });
const results: Record<string, unknown> = { rounds: ROUNDS, threads: THREADS, cpus: os.cpus().length, loadavg: os.loadavg().map((l) => +l.toFixed(2)) };
try {
  for (const [name, id, request] of [['llm', 'cold-llm', chat], ['stt', 'cold-whisper', transcribe]] as const) {
    const cold: number[] = [];
    const warm: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const unloaded = await fetch(`${tiny.url}/v1/models/${id}/unload`, { method: 'POST' });
      if (unloaded.status !== 200) throw new Error(`unload: ${unloaded.status} ${await unloaded.text()}`);
      cold.push(await timed(request));
      warm.push(await timed(request));
    }
    results[name] = { unloaded_first_request_ms: stats(cold), loaded_request_ms: stats(warm), load_cost_ms: +(median(cold) - median(warm)).toFixed(1) };
  }
} finally {
  tiny.service.child.kill('SIGTERM');
  await tiny.service.exited;
  fs.rmSync(dir, { recursive: true, force: true });
}
console.log(JSON.stringify(results, null, 2));
