/**
 * The two whisper.cpp bindings behind the embedded STT engine, one window at a time:
 *  - CPU: smart-whisper 0.8.1, rebuilt at install with AVX2-class flags and current whisper.cpp's
 *    seek and no_speech_prob patched in, and its decoding states kept per model and reused across
 *    windows and requests (scripts/whisper-patches.mjs). Tokens, probabilities and
 *    token timestamps; its speed against whisper.cpp 1.9.3's CLI is in the README.
 *  - CUDA: @fugood/whisper.node 1.1.1's prebuilt CUDA 12 variant (whisper.cpp 1.9.1; 1.1.3 is not
 *    installable with `npm ci`: most of its platform packages were never published). Its CPU
 *    builds have no AVX (~12× slower), hence CPU stays on smart-whisper. It returns segment text
 *    and times only: no tokens, probabilities or word timestamps; it always uses the first visible
 *    GPU (CUDA_VISIBLE_DEVICES selects it). Not exercised on a GPU in this project's CI.
 * Both run on native worker threads; the event loop stays free.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import type * as SmartWhisperModule from 'smart-whisper';

export interface WindowParams {
  language: string;
  translate: boolean;
  prompt: string;
  temperature: number;
  threads: number;
  /** 1 = greedy, else beam search of this width. */
  beamSize: number;
  tokenTimestamps: boolean;
}

export interface WindowToken {
  text: string;
  id: number;
  p: number;
  from?: number;
  to?: number;
}

/** One segment of one window; times in ms from the window's start. */
export interface WindowSegment {
  from: number;
  to: number;
  text: string;
  lang: string;
  tokens: WindowToken[];
  /** P(<|nospeech|>) at SOT of the pass that made it, where the binding reports it. */
  no_speech_prob?: number;
}

export interface WhisperBackend {
  /** For logs and /health: binding and device. */
  readonly label: string;
  /** Checks `signal` when the window is done (neither binding stops one safely mid-way). */
  run(samples: Float32Array, params: WindowParams, signal: AbortSignal): Promise<WindowSegment[]>;
  free(): Promise<void>;
}

export async function loadSmartWhisper(file: string): Promise<WhisperBackend> {
  const lib: typeof SmartWhisperModule = await import('smart-whisper');
  const model = await lib.WhisperModel.load(file, false);
  return {
    label: 'cpu (smart-whisper, patched whisper.cpp)',
    async run(samples, p) {
      // smart-whisper cannot stop a running window: an abort takes effect when it returns
      const task = await lib.TranscribeTask.run(model, samples, {
        language: p.language,
        translate: p.translate,
        initial_prompt: p.prompt,
        temperature: p.temperature,
        n_threads: p.threads,
        // WhisperSamplingStrategy: 0 greedy, 1 beam search (the binding's default, width 5)
        ...(p.beamSize > 1 ? { strategy: 1, beam_size: p.beamSize } : { strategy: 0 }),
        token_timestamps: p.tokenTimestamps,
        format: 'detail',
      });
      return (await task.result) as unknown as WindowSegment[];
    },
    free: () => model.free(),
  };
}

interface FugoodContext {
  transcribeData(audio: ArrayBuffer, options: Record<string, unknown>): { stop: () => Promise<void>; promise: Promise<{ language?: string; segments: { text: string; t0: number; t1: number }[]; isAborted: boolean }> };
  release(): Promise<void>;
}

/** True where an NVIDIA driver is loaded (STT_DEVICE=auto tries CUDA only then). */
export function nvidiaGpuPresent(): boolean {
  return fs.existsSync('/proc/driver/nvidia/version');
}

/**
 * @fugood/whisper.node on `variant` ('cuda' on a GPU host; 'default' is its AVX-less CPU build,
 * which the tests use to run this path without a GPU).
 */
export async function loadFugood(file: string, variant: 'cuda' | 'default', useGpu: boolean): Promise<WhisperBackend> {
  // the platform package itself (@fugood/whisper.node's loader falls back to its slow CPU build
  // when the CUDA one does not load, e.g. without libcudart.so.12: here that is an error instead)
  const name = `@fugood/node-whisper-${process.platform}-${process.arch}${variant === 'default' ? '' : `-${variant}`}`;
  let module: { WhisperContext: new (o: object) => FugoodContext };
  try {
    module = createRequire(import.meta.url)(name) as typeof module;
  } catch (error) {
    throw new Error(`${name} did not load: ${(error as Error).message.split('\n')[0]}`, { cause: error });
  }
  const context = await (new module.WhisperContext({ filePath: file, useGpu, useFlashAttn: useGpu }) as FugoodContext | Promise<FugoodContext>);
  return {
    label: `${useGpu ? 'cuda' : 'cpu'} (@fugood/whisper.node ${variant}, whisper.cpp 1.9.3)`,
    async run(samples, p, signal) {
      // this binding takes 16-bit PCM
      const pcm = new Int16Array(samples.length);
      for (let i = 0; i < samples.length; i++) pcm[i] = Math.max(-32768, Math.min(32767, Math.round(samples[i]! * 32767)));
      const job = context.transcribeData(pcm.buffer, {
        language: p.language,
        translate: p.translate,
        prompt: p.prompt,
        temperature: p.temperature,
        maxThreads: p.threads,
        beamSize: p.beamSize,
        tokenTimestamps: false,
      });
      // not job.stop(): in 1.1.3 (and so assumed in 1.1.1) its promise then never settles (seen here), so, as with
      // smart-whisper, an abort takes effect when the window ends
      // its native job holds no reference on the event loop: without this a process with nothing
      // else to do (a CLI, a test) would exit with the transcription pending
      const keepAlive = setInterval(() => {}, 1 << 30);
      try {
        const result = await job.promise;
        signal.throwIfAborted();
        return result.segments.map((s) => ({ from: s.t0, to: s.t1, text: s.text, lang: result.language ?? '', tokens: [] }));
      } finally {
        clearInterval(keepAlive);
      }
    },
    free: () => context.release(),
  };
}
