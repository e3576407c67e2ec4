/**
 * The embedded STT: whisper.cpp through smart-whisper (built from its bundled sources, rebuilt
 * with this CPU's vector extensions by scripts/build-whisper.mjs). The model loads once; each
 * transcription runs on libuv's threadpool (the event loop stays free), in windows of
 * WINDOW_SECONDS so that a long file yields between windows: other requests' windows interleave
 * with it, and an abort takes effect at the next window.
 *
 * whisper.cpp crashes the process on a bad model file or an empty buffer, so model files are
 * checked first (models/whisper.ts) and audio is padded to at least 1.1 s (see MIN_SAMPLES).
 */
import type { Logger } from 'pino';
import type { HfSettings } from '../../models/hugging-face.ts';
import { ApiError } from '../../errors.ts';
import { ModelUnavailableError } from '../../models/errors.ts';
import { resolveWhisperModel } from '../../models/whisper.ts';
import { Admission } from '../../util/admission.ts';
import type { EngineState } from '../types.ts';
import { loadFugood, loadSmartWhisper, nvidiaGpuPresent, type WhisperBackend, type WindowSegment, type WindowToken } from './whisper-backends.ts';
import { STT_SAMPLE_RATE, type SttEngine, type SttEvent, type Transcript, type TranscriptionRequest, type TranscriptSegment, type TranscriptWord } from './types.ts';

export const WINDOW_SECONDS = 30;
// whisper.cpp transcribes nothing from under 100 mel frames ("input is too short": 1.0 s of
// samples makes 99) and older builds abort on less: shorter audio (a one-word "yes" turn, the
// tail of a long file) is padded with silence to 1.1 s. The segment times are clamped to the
// real duration below.
const MIN_SAMPLES = Math.round(1.1 * STT_SAMPLE_RATE);

export interface WhisperCppOptions {
  /** A ggml model file path, or a tier (`tiny.en`, `base`, `large-v3-turbo`, ...) fetched through `hf`. */
  model: string;
  /** CPU threads per window (a number, already resolved: no "auto"). */
  threads: number;
  /** Beam search width; 1 = greedy (default 5). */
  beamSize?: number;
  /** Windows decoded at once; further windows wait their turn, FIFO. */
  parallel: number;
  /** Where tier models are cached and fetched from. */
  hf: HfSettings;
  /** The configuration entry that names `model`, quoted in remedies (`LOCAL_WHISPER_MODEL`, a models-file path). */
  setting?: string;
  /** `auto`, `cpu`, `cuda` or `cuda:N` (default `auto`). */
  device?: string;
  /** Test hook: the @fugood build used for `cuda` ('default' = its CPU build, to run that path without a GPU). */
  cudaVariant?: 'cuda' | 'default';
}

type DetailedToken = WindowToken;
type DetailedSegment = WindowSegment;

const isSpecial = (t: DetailedToken) => t.text.startsWith('[_') || /^<\|.*\|>$/.test(t.text);

/** Words from whisper's sub-word tokens: a token that starts with a space starts a word. */
export function wordsFrom(tokens: DetailedToken[], offsetSeconds: number): TranscriptWord[] {
  const words: TranscriptWord[] = [];
  for (const token of tokens) {
    if (isSpecial(token) || token.from === undefined || token.to === undefined) continue;
    const start = offsetSeconds + token.from / 1000;
    const end = offsetSeconds + token.to / 1000;
    const last = words.at(-1);
    if (!last || /^\s/.test(token.text)) words.push({ word: token.text.trim(), start, end });
    else {
      last.word += token.text;
      last.end = end;
    }
  }
  return words.filter((w) => w.word !== '');
}

/**
 * The patched binding reports the model's no-speech probability. An unpatched build (the
 * postinstall rebuild skipped or failed) has none: 0 then, the value OpenAI's schema can hold and
 * that a client reading it as "this is speech" gets right for every segment whisper did emit.
 */
function noSpeechProb(r: DetailedSegment): number {
  return typeof r.no_speech_prob === 'number' && Number.isFinite(r.no_speech_prob) ? r.no_speech_prob : 0;
}

export class WhisperCppEngine implements SttEngine {
  readonly id = 'whisper-cpp';
  readonly capability = 'stt' as const;
  private current: EngineState = { status: 'loading' };
  private backend: WhisperBackend | undefined;
  private multilingual = true;
  /**
   * Fair scheduling: the slot is taken per 30 s window, not per request, and each request queues
   * again after every window — so a 3 s request waits for at most the windows already running,
   * never for the rest of a 10-minute file (the whisper.cpp server problem, its issue #1803).
   */
  private readonly windowSlots: Admission;

  constructor(
    private readonly options: WhisperCppOptions,
    private readonly logger: Logger,
  ) {
    this.windowSlots = new Admission(options.parallel, Number.MAX_SAFE_INTEGER, 'whisper window');
  }

  state(): EngineState {
    return this.current;
  }

  async load(): Promise<void> {
    const started = Date.now();
    try {
      const { file, multilingual } = await resolveWhisperModel(this.options.model, { ...this.options.hf, logger: this.logger, variable: this.options.setting ?? 'model' });
      this.backend = await this.loadBackend(file);
      // English-only models get language "en": "auto" would run language detection for nothing
      this.multilingual = multilingual;
      this.current = { status: 'ready' };
      this.logger.info({ engine: this.id, model: file, device: this.backend.label, threads: this.options.threads, load_ms: Date.now() - started }, 'Whisper loaded');
    } catch (error) {
      const missing = error instanceof ModelUnavailableError;
      this.current = { status: missing ? 'missing_model' : 'error', detail: missing ? error.message : `failed to load ${this.options.model}: ${(error as Error).message}` };
      this.logger.error({ engine: this.id, detail: this.current.detail }, 'Whisper not available');
    }
  }

  /** STT_DEVICE: cpu → smart-whisper; cuda[:0] → the CUDA binding or an error; auto → CUDA where a GPU and the binding work, else CPU. */
  private async loadBackend(file: string): Promise<WhisperBackend> {
    const device = this.options.device ?? 'auto';
    const cuda = () => loadFugood(file, this.options.cudaVariant ?? 'cuda', (this.options.cudaVariant ?? 'cuda') === 'cuda');
    if (device === 'cpu') return loadSmartWhisper(file);
    if (device.startsWith('cuda')) {
      const index = Number(device.split(':')[1] ?? 0);
      if (index !== 0) throw new Error(`STT_DEVICE=${device}: the CUDA Whisper binding uses the first visible GPU; set CUDA_VISIBLE_DEVICES=${index} and STT_DEVICE=cuda`);
      return cuda();
    }
    if (nvidiaGpuPresent()) {
      try {
        return await cuda();
      } catch (error) {
        this.logger.warn({ engine: this.id, detail: (error as Error).message }, 'Whisper on CUDA unavailable; using the CPU');
      }
    }
    return loadSmartWhisper(file);
  }

  async *transcribe(request: TranscriptionRequest, signal: AbortSignal): AsyncIterable<SttEvent> {
    if (this.current.status !== 'ready' || !this.backend) throw ApiError.unavailable(`Whisper not ready: ${this.current.detail ?? this.current.status}`, 'engine_unavailable');
    if (request.task === 'translate' && !this.multilingual) throw ApiError.badRequest('This Whisper model is English-only and cannot translate; use a multilingual tier.', 'model', 'unsupported_task');
    const audio = request.audio;
    const duration = audio.length / STT_SAMPLE_RATE;
    const segments: TranscriptSegment[] = [];
    const words: TranscriptWord[] = [];
    let language = request.language ?? (this.multilingual ? '' : 'en');
    const window = WINDOW_SECONDS * STT_SAMPLE_RATE;
    for (let offset = 0; offset < Math.max(audio.length, 1); offset += window) {
      signal.throwIfAborted();
      let slice = audio.subarray(offset, Math.min(audio.length, offset + window));
      if (slice.length < MIN_SAMPLES) {
        const padded = new Float32Array(MIN_SAMPLES);
        padded.set(slice);
        slice = padded;
      }
      // whisper.cpp aborts the whole process (a ggml assertion) on a NaN; decoded uploads are
      // checked already, this guards every other way samples reach the engine (~0.5 ms a window)
      if (!slice.every(Number.isFinite)) throw ApiError.badRequest('The audio holds non-finite samples (NaN or Infinity).', 'file', 'invalid_audio');
      const release = await this.windowSlots.acquire(signal);
      let results: DetailedSegment[];
      try {
        results = await this.backend.run(
          slice,
          { language: language || 'auto', translate: request.task === 'translate', prompt: request.prompt ?? '', temperature: request.temperature ?? 0, threads: this.options.threads, beamSize: this.options.beamSize ?? 5, tokenTimestamps: true },
          signal,
        );
      } finally {
        release();
      }
      signal.throwIfAborted();
      const offsetSeconds = offset / STT_SAMPLE_RATE;
      for (const r of results) {
        if (!language && r.lang) language = r.lang;
        const textTokens = r.tokens.filter((t) => !isSpecial(t));
        const segment: TranscriptSegment = {
          id: segments.length,
          start: Math.min(duration, offsetSeconds + r.from / 1000),
          end: Math.min(duration, offsetSeconds + r.to / 1000),
          text: r.text,
          avgLogprob: textTokens.length ? textTokens.reduce((s, t) => s + Math.log(Math.max(t.p, 1e-10)), 0) / textTokens.length : 0,
          noSpeechProb: noSpeechProb(r),
          tokens: textTokens.map((t) => t.id),
        };
        segments.push(segment);
        if (request.wordTimestamps) words.push(...wordsFrom(r.tokens, offsetSeconds));
        signal.throwIfAborted();
        yield { type: 'segment', segment };
      }
    }
    const transcript: Transcript = {
      text: segments.map((s) => s.text).join('').trim(),
      language: language || 'en',
      duration,
      segments,
      ...(request.wordTimestamps ? { words } : {}),
    };
    yield { type: 'done', transcript };
  }

  async close(): Promise<void> {
    this.current = { status: 'disabled', detail: 'closed' };
    await this.backend?.free();
  }
}
