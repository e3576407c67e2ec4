/**
 * The embedded offline voice: eSpeak NG compiled to JS/WASM (@echogarden/espeak-ng-emscripten,
 * GPL-3.0), ~140 languages, no weights, no server. It synthesizes 22.05 kHz speech in ~100 ms
 * chunks; each worker thread (EMBEDDED_TTS_WORKERS) speaks one utterance at a time, the rest wait
 * in FIFO order. An abort stops the utterance between chunks.
 *
 * Voices: eSpeak language names (`en-us`, `de`, `fr`, ...), optionally with a variant
 * (`en-us+f3`), and the OpenAI voice names mapped onto English variants so OpenAI clients work.
 */
import { ResourcePool } from '../../util/resource-pool.ts';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { ApiError } from '../../errors.ts';
import { AsyncQueue } from '../../util/async-queue.ts';
import type { EngineState } from '../types.ts';
import type { SynthesizeJob, WorkerMessage } from './espeak-worker.ts';
import type { PcmChunk, SynthesisRequest, TtsEngine, Voice } from './types.ts';

export const ESPEAK_SAMPLE_RATE = 22_050;
const BASE_RATE = 175; // eSpeak's default words per minute
const MIN_RATE = 80;
const MAX_RATE = 450;

/** OpenAI's voice names → English eSpeak voices with distinct variants. */
export const OPENAI_VOICE_MAP: Record<string, string> = {
  alloy: 'en-us',
  ash: 'en-us+m3',
  ballad: 'en-gb-x-rp+m2',
  coral: 'en-us+f3',
  echo: 'en-us+m1',
  fable: 'en-gb-x-rp',
  nova: 'en-us+f2',
  onyx: 'en-us+m7',
  sage: 'en-us+f4',
  shimmer: 'en-us+f1',
  verse: 'en-us+m2',
};

interface Slot {
  worker: Worker;
  jobs: Map<number, AsyncQueue<WorkerMessage>>;
}

export interface EspeakOptions {
  /** Worker threads; each speaks one utterance at a time. */
  workers: number;
  /** The voice of requests that name none: an eSpeak language (`en-us`), optionally `+variant`. */
  defaultVoice: string;
}

export class EmbeddedEspeakEngine implements TtsEngine {
  readonly id = 'espeak';
  readonly capability = 'tts' as const;
  private current: EngineState = { status: 'loading' };
  /** Every live worker (a crashed one leaves), and which of them are free. */
  private slots: Slot[] = [];
  private readonly free = new ResourcePool<Slot>();
  private voiceList: Voice[] = [];
  /** Every language name eSpeak answers to (`en`, `en-us`, `en-gb-x-rp`, `de`, ...). */
  private languages = new Set<string>();
  private nextId = 1;

  constructor(
    private readonly options: EspeakOptions,
    private readonly logger: Logger,
  ) {}

  state(): EngineState {
    return this.current;
  }

  async load(): Promise<void> {
    const started = performance.now();
    try {
      this.slots = await Promise.all(Array.from({ length: this.options.workers }, () => this.spawn()));
      for (const slot of this.slots) this.free.release(slot);
      this.current = { status: 'ready' };
      this.logger.info({ engine: this.id, workers: this.slots.length, voices: this.voiceList.length, load_ms: Math.round(performance.now() - started) }, 'embedded voice ready');
    } catch (error) {
      this.current = { status: 'error', detail: `eSpeak NG failed to start: ${(error as Error).message}` };
      this.logger.error({ err: error }, 'embedded voice failed to start');
    }
  }

  private spawn(): Promise<Slot> {
    // From source (tsx) the worker is TypeScript too: it registers tsx's loader in the worker
    // before importing it (a worker does not inherit the loader). From dist/ it is plain JS.
    const fromSource = import.meta.url.endsWith('.ts');
    const worker = fromSource
      ? new Worker(`import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(new URL('./espeak-worker.ts', import.meta.url).href)}); });`, { eval: true })
      : new Worker(new URL('./espeak-worker.js', import.meta.url));
    worker.unref();
    const slot: Slot = { worker, jobs: new Map() };
    return new Promise((resolve, reject) => {
      worker.once('error', reject);
      worker.on('message', (message: WorkerMessage) => {
        if (message.type === 'ready') {
          worker.off('error', reject);
          worker.on('error', (error) => this.workerFailed(slot, error));
          if (this.voiceList.length === 0) {
            this.voiceList = voicesFrom(message.voices);
            this.languages = new Set(message.voices.flatMap((v) => v.languages.map((l) => l.toLowerCase())));
          }
          resolve(slot);
          return;
        }
        const queue = slot.jobs.get(message.id);
        queue?.push(message);
        if (message.type !== 'chunk') {
          queue?.end();
          slot.jobs.delete(message.id);
        }
      });
    });
  }

  private workerFailed(slot: Slot, error: Error): void {
    this.logger.error({ err: error }, 'embedded voice worker crashed; starting another');
    for (const queue of slot.jobs.values()) {
      queue.push({ type: 'error', id: 0, message: `the voice worker crashed: ${error.message}` });
      queue.end();
    }
    slot.jobs.clear();
    this.slots = this.slots.filter((s) => s !== slot);
    this.free.remove(slot);
    void this.spawn().then(
      (fresh) => {
        this.slots.push(fresh);
        this.free.release(fresh);
      },
      (e: unknown) => this.logger.error({ err: e }, 'could not restart the voice worker'),
    );
  }

  async voices(): Promise<Voice[]> {
    return this.voiceList;
  }

  speaksAt(speed: number): boolean {
    const rate = BASE_RATE * speed;
    return rate >= MIN_RATE && rate <= MAX_RATE;
  }

  /** The eSpeak voice for a request's `voice` (OpenAI names mapped; unknown → 400 before any work). */
  resolveVoice(voice: string | undefined): string {
    const name = (voice ?? this.options.defaultVoice).trim();
    const mapped = OPENAI_VOICE_MAP[name.toLowerCase()] ?? name;
    const base = mapped.split('+')[0]!.toLowerCase();
    if (this.languages.size > 0 && !this.languages.has(base)) {
      throw ApiError.badRequest(`Unknown voice "${name}" for the embedded voice; GET /v1/audio/voices lists them.`, 'voice', 'unknown_voice');
    }
    return mapped;
  }

  async *synthesize(request: SynthesisRequest, signal: AbortSignal): AsyncIterable<PcmChunk> {
    const voice = this.resolveVoice(request.voice);
    const slot = await this.free.acquire(signal);
    const id = this.nextId++;
    const cancel = new Int32Array(new SharedArrayBuffer(4));
    const queue = new AsyncQueue<WorkerMessage>();
    slot.jobs.set(id, queue);
    const stop = () => Atomics.store(cancel, 0, 1);
    signal.addEventListener('abort', stop, { once: true });
    let finished = false;
    try {
      const rate = Math.round(BASE_RATE * (request.speed ?? 1));
      slot.worker.postMessage({ type: 'synthesize', id, text: request.text, voice, rate, cancel } satisfies SynthesizeJob);
      for await (const message of queue) {
        signal.throwIfAborted(); // the worker runs far ahead of real time: drop what it already sent
        if (message.type === 'chunk') yield { samples: message.samples, sampleRate: ESPEAK_SAMPLE_RATE };
        else if (message.type === 'error') {
          if (message.badVoice) throw ApiError.badRequest(`Unknown voice "${voice}"; GET /v1/audio/voices lists them.`, 'voice', 'unknown_voice');
          throw new Error(`embedded voice failed: ${message.message}`);
        }
      }
      finished = true;
      signal.throwIfAborted();
    } finally {
      signal.removeEventListener('abort', stop);
      if (!finished) {
        // stopped early (abort, consumer left): tell the worker, and hand the slot back only once
        // it has answered for this job, so the next utterance never receives its tail
        stop();
        if (slot.jobs.has(id)) await drain(queue);
      }
      slot.jobs.delete(id);
      this.release(slot);
    }
  }

  private release(slot: Slot): void {
    // a crashed worker's slot is not handed out again
    if (this.slots.includes(slot)) this.free.release(slot);
  }

  async close(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
    this.slots = [];
    this.free.clear();
  }
}

async function drain(queue: AsyncQueue<WorkerMessage>): Promise<void> {
  for await (const message of queue) void message;
}

function voicesFrom(list: { id: string; name: string; languages: string[] }[]): Voice[] {
  const seen = new Set<string>();
  const voices: Voice[] = [];
  for (const [alias, target] of Object.entries(OPENAI_VOICE_MAP)) voices.push({ id: alias, name: `${alias} (eSpeak ${target})`, engine: 'espeak' });
  for (const v of list) {
    if (seen.has(v.id)) continue;
    seen.add(v.id);
    voices.push({ id: v.id, name: v.name, engine: 'espeak' });
  }
  return voices;
}
