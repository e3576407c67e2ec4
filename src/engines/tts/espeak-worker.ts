/**
 * Worker thread that runs eSpeak NG (compiled to JS/WASM). Synthesis is synchronous, so it lives
 * here, off the event loop. Messages in: `synthesize` (with a shared cancel flag the main thread
 * sets to stop mid-utterance). Messages out: `ready`, `chunk` (samples transferred), `done`, `error`.
 */
import { parentPort } from 'node:worker_threads';
import init from '@echogarden/espeak-ng-emscripten';

export interface SynthesizeJob {
  type: 'synthesize';
  id: number;
  text: string;
  voice: string;
  rate: number;
  cancel: Int32Array;
}

export type WorkerMessage =
  | { type: 'ready'; voices: { id: string; name: string; languages: string[] }[] }
  | { type: 'chunk'; id: number; samples: Int16Array }
  | { type: 'done'; id: number }
  | { type: 'error'; id: number; message: string; badVoice?: boolean };

const port = parentPort!;
const espeak = new (await init()).eSpeakNGWorker();
// one throw-away utterance so the first real one does not pay for warming up the WASM code (~100 ms)
espeak.set_voice('en-us');
espeak.synthesize('Warming up.', () => false);
port.postMessage({
  type: 'ready',
  voices: espeak.list_voices().map((v) => ({ id: v.languages[0]?.name ?? v.identifier, name: v.name, languages: v.languages.map((l) => l.name) })),
} satisfies WorkerMessage);

port.on('message', (job: SynthesizeJob) => {
  try {
    if (espeak.set_voice(job.voice) !== 0) {
      port.postMessage({ type: 'error', id: job.id, message: `unknown voice "${job.voice}"`, badVoice: true } satisfies WorkerMessage);
      return;
    }
    espeak.set_rate(job.rate);
    espeak.synthesize(job.text, (samples) => {
      if (samples && samples.length > 0) {
        const copy = samples.slice(); // the callback's view points into WASM memory
        port.postMessage({ type: 'chunk', id: job.id, samples: copy } satisfies WorkerMessage, [copy.buffer]);
      }
      return Atomics.load(job.cancel, 0) !== 0;
    });
    port.postMessage({ type: 'done', id: job.id } satisfies WorkerMessage);
  } catch (error) {
    port.postMessage({ type: 'error', id: job.id, message: error instanceof Error ? error.message : String(error) } satisfies WorkerMessage);
  }
});
