/**
 * Speech-to-text, shared by /v1/speech-to-text, the OpenAI transcription routes (and later the
 * WebSocket): admission (STT_PARALLEL running, STT_QUEUE_SIZE waiting), the engine fallback chain
 * (STT_BACKEND order: the next engine answers when one is unavailable or fails with a 5xx), and
 * metrics (dependency histogram labelled with the engine's id, audio seconds, real-time factor).
 */
import type { Config } from '../config.ts';
import type { EngineRegistry } from '../engines/registry.ts';
import type { Transcript, TranscriptionRequest, TranscriptSegment } from '../engines/stt/types.ts';
import { ApiError, isRetryable } from '../errors.ts';
import type { Metrics } from '../observability/metrics.ts';
import { outcomeOf } from '../observability/metrics.ts';
import { Admission } from '../util/admission.ts';

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

  constructor(
    config: Config,
    private readonly engines: EngineRegistry,
    private readonly metrics: Metrics,
  ) {
    // Requests in flight are bounded here (STT_PARALLEL + STT_QUEUE_SIZE, then 429); the engines
    // schedule their work fairly among them (whisper.cpp: per 30 s window).
    const inFlight = metrics.gauge('stt_requests_in_flight', 'Transcription requests admitted and not finished.');
    this.admission = new Admission(config.STT_PARALLEL + config.STT_QUEUE_SIZE, 0, 'transcription', (running) => inFlight.set(running));
    this.audioSeconds = metrics.counter('stt_audio_seconds_total', 'Seconds of audio transcribed.', ['engine']);
    this.rtf = metrics.histogram('stt_real_time_factor', 'Processing time divided by audio duration (lower is faster).', ['engine'], [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5]);
  }

  /** Throws the 503 envelope before any work when no STT engine (of the named model) is ready, 404 for an unknown model. */
  assertAvailable(model?: string): void {
    this.engines.assertServes('stt', model);
  }

  /**
   * Runs one transcription. `onSegment` sees each segment as it is decoded (for streaming); once
   * an engine has emitted a segment, a later failure is not retried on the next engine.
   */
  async transcribe(request: TranscriptionRequest, signal: AbortSignal, onSegment?: (segment: TranscriptSegment) => void, model?: string): Promise<TranscriptionResult> {
    const entry = await this.engines.prepare('stt', model);
    const chain = this.engines.ready('stt', entry.id);
    const release = await this.engines.hold(entry, () => this.admission.acquire(signal));
    try {
      let lastError: unknown;
      let emitted = false;
      for (const engine of chain) {
        const started = performance.now();
        try {
          let transcript: Transcript | undefined;
          for await (const event of engine.transcribe(request, signal)) {
            if (event.type === 'done') transcript = event.transcript;
            else {
              emitted = true;
              onSegment?.(event.segment);
            }
          }
          if (!transcript) throw new ApiError(502, 'upstream_error', `${engine.id} ended without a transcript.`);
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
