/**
 * Speech-to-text, shared by /v1/speech-to-text, the OpenAI transcription routes (and later the
 * WebSocket): admission (STT_PARALLEL running, STT_QUEUE_SIZE waiting), the engine fallback chain
 * (STT_BACKEND order: the next engine answers when one is unavailable or fails with a 5xx), and
 * metrics (dependency histogram labelled with the engine's id, audio seconds, real-time factor).
 *
 * `vadFilter` (default STT_VAD_FILTER): the embedded engine gets only the speech regions, packed
 * (src/audio/speech-regions.ts), and its timestamps are mapped back to the original audio; audio
 * without speech answers an empty transcript without running Whisper. Remote OpenAI-compatible
 * engines get the whole file: they bill and filter on their own side, and their answer would
 * need no mapping.
 *
 * Every engine's segments then pass the hallucination filter (segment-filter.ts: OpenAI's
 * no_speech_prob/avg_logprob rule, STT_NO_SPEECH_THRESHOLD and STT_LOGPROB_THRESHOLD), streamed
 * segments included.
 */
import type { Config } from '../config.ts';
import type { EngineRegistry } from '../engines/registry.ts';
import type { Transcript, TranscriptionRequest, TranscriptSegment } from '../engines/stt/types.ts';
import { ApiError, isRetryable } from '../errors.ts';
import type { Metrics } from '../observability/metrics.ts';
import { outcomeOf } from '../observability/metrics.ts';
import { Admission } from '../util/admission.ts';
import { STT_SAMPLE_RATE } from '../engines/stt/types.ts';
import { WINDOW_SECONDS } from '../engines/stt/whisper-cpp.ts';
import { SegmentFilter, type SegmentThresholds } from './segment-filter.ts';
import { packRegions, speechRegions, toOriginalTime, type PackedSpeech } from '../audio/speech-regions.ts';

/** Engines that transcribe elsewhere (VAD is not applied before them). */
const REMOTE_ENGINES = new Set(['openai']);

export interface ServiceTranscriptionRequest extends TranscriptionRequest {
  /** Transcribe only the speech regions (undefined: STT_VAD_FILTER). */
  vadFilter?: boolean;
}

export interface TranscriptionResult {
  transcript: Transcript;
  engine: string;
  /** The id of the model that served it. */
  model: string;
}

export class TranscriptionService {
  private readonly admission: Admission;
  private readonly audioSeconds;
  private readonly rtf;
  private readonly vadDefault: boolean;
  private readonly thresholds: SegmentThresholds;

  constructor(
    config: Config,
    private readonly engines: EngineRegistry,
    private readonly metrics: Metrics,
  ) {
    // Requests in flight are bounded here (STT_PARALLEL + STT_QUEUE_SIZE, then 429); the engines
    // schedule their work fairly among them (whisper.cpp: per 30 s window).
    const inFlight = metrics.gauge('stt_requests_in_flight', 'Transcription requests admitted and not finished.');
    this.vadDefault = config.STT_VAD_FILTER;
    this.thresholds = { noSpeech: config.STT_NO_SPEECH_THRESHOLD, logprob: config.STT_LOGPROB_THRESHOLD };
    this.admission = new Admission(config.STT_PARALLEL + config.STT_QUEUE_SIZE, 0, 'transcription', (running) => inFlight.set(running));
    this.audioSeconds = metrics.counter('stt_audio_seconds_total', 'Seconds of audio transcribed.', ['engine']);
    this.rtf = metrics.histogram('stt_real_time_factor', 'Processing time divided by audio duration (lower is faster).', ['engine'], [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5]);
  }

  /** Throws the 503 envelope before any work when no STT engine (of the named model) is ready, 404 for an unknown model. */
  assertAvailable(model?: string): void {
    this.engines.assertServes('stt', model);
  }

  /** The id of the model a name picks (undefined: the default); 404 `model_not_found` for an unknown name. Loads nothing. */
  modelId(model?: string): string {
    return this.engines.model('stt', model).id;
  }

  /**
   * Runs one transcription. `onSegment` sees each segment as it is decoded (for streaming); once
   * an engine has emitted a segment, a later failure is not retried on the next engine.
   */
  async transcribe(request: ServiceTranscriptionRequest, signal: AbortSignal, onSegment?: (segment: TranscriptSegment) => void, model?: string, keepAliveMs?: number): Promise<TranscriptionResult> {
    const entry = await this.engines.prepare('stt', model, signal);
    const chain = this.engines.ready('stt', entry.id);
    const { vadFilter, ...base } = request;
    const vad = vadFilter ?? this.vadDefault;
    const release = await this.engines.hold(entry, () => this.admission.acquire(signal));
    try {
      let lastError: unknown;
      let emitted = false;
      let packed: PackedSpeech | undefined;
      for (const engine of chain) {
        const started = performance.now();
        try {
          const useVad = vad && !REMOTE_ENGINES.has(engine.id);
          if (useVad) packed ??= await packRegions(base.audio, await speechRegions(base.audio, signal), WINDOW_SECONDS * STT_SAMPLE_RATE, signal);
          if (useVad && packed!.chunks.length === 0) {
            this.engines.keepAliveFor(entry, keepAliveMs);
            return { transcript: silence(base), engine: engine.id, model: entry.id };
          }
          const chunks = useVad ? packed!.chunks : undefined;
          const toOriginal = (s: TranscriptSegment): TranscriptSegment => (chunks ? remapSegment(s, chunks) : s);
          const filter = new SegmentFilter(this.thresholds);
          let transcript: Transcript | undefined;
          for await (const event of engine.transcribe(chunks ? { ...base, audio: packed!.audio } : base, signal)) {
            this.engines.keepAliveFor(entry, keepAliveMs); // accepted: the engine answers (its checks, e.g. English-only translate, come first)
            if (event.type === 'done') transcript = event.transcript;
            else {
              // a dropped segment reached no one: the next engine may still answer
              const segment = filter.pass(toOriginal(event.segment));
              if (segment) {
                emitted = true;
                onSegment?.(segment);
              }
            }
          }
          if (!transcript) throw new ApiError(502, 'upstream_error', `${engine.id} ended without a transcript.`);
          if (chunks) transcript = remapTranscript(transcript, chunks, base.audio.length / STT_SAMPLE_RATE);
          transcript = SegmentFilter.apply(transcript, this.thresholds);
          const seconds = (performance.now() - started) / 1000;
          this.metrics.dependencyDuration.observe({ dependency: engine.id, operation: request.task, outcome: 'success' }, seconds);
          this.audioSeconds.inc({ engine: engine.id }, transcript.duration);
          if (transcript.duration > 0) this.rtf.observe({ engine: engine.id }, seconds / transcript.duration);
          return { transcript, engine: engine.id, model: entry.id };
        } catch (error) {
          this.metrics.dependencyDuration.observe({ dependency: engine.id, operation: request.task, outcome: outcomeOf(error) }, (performance.now() - started) / 1000);
          if (signal.aborted || !isRetryable(error) || emitted) throw error;
          lastError = error;
        }
      }
      throw lastError;
    } finally {
      release();
    }
  }
}

/** What audio without speech transcribes to (Whisper is not run: it would make text up). */
function silence(request: TranscriptionRequest): Transcript {
  return { text: '', language: request.language ?? 'en', duration: request.audio.length / STT_SAMPLE_RATE, segments: [], ...(request.wordTimestamps ? { words: [] } : {}) };
}

type Chunks = PackedSpeech['chunks'];

function remapSegment(s: TranscriptSegment, chunks: Chunks): TranscriptSegment {
  const start = toOriginalTime(chunks, s.start, false);
  return { ...s, start, end: Math.max(start, toOriginalTime(chunks, s.end, true)) };
}

/** The engine's transcript of the packed speech, in the original audio's time. */
function remapTranscript(t: Transcript, chunks: Chunks, duration: number): Transcript {
  const words = t.words?.map((w) => {
    const start = toOriginalTime(chunks, w.start, false);
    return { ...w, start, end: Math.max(start, toOriginalTime(chunks, w.end, true)) };
  });
  return { ...t, duration, segments: t.segments.map((s) => remapSegment(s, chunks)), ...(words ? { words } : {}) };
}
