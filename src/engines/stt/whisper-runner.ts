/**
 * The embedded Whisper behind a process boundary (STT_RUNNER=process): the gateway-side adapter of
 * the STT port that runs whisper.cpp in a supervised child process (stt-runner.ts), supervised by
 * the shared runner/supervisor.ts. A native fault in whisper.cpp (a ggml assertion, a segfault on
 * odd input, OOM) ends the runner only: the transcriptions it was serving fail with 503
 * `engine_restarting` (the WebSocket `error` event mid-stream) and the runner restarts.
 *
 * The model file is found and checked here first (missing → `missing_model` with the remedy; a
 * truncated file is refused before whisper.cpp sees it), so those are reported without a runner.
 * Audio crosses as Float32Arrays, 30 s per message, with 'advanced' (structured-clone)
 * serialization: the samples as bytes, no JSON (see docs/benchmarks.md). Segments stream back per 30 s window; a client
 * that leaves cancels the request in the runner, which stops at the next window.
 */
import path from 'node:path';
import type { Logger } from 'pino';
import { resolveWhisperModel } from '../../models/whisper.ts';
import type { Metrics } from '../../observability/metrics.ts';
import { RunnerEngine, type RunnerSupervision } from '../runner/runner-engine.ts';
import { siblingEntry } from '../runner/supervisor.ts';
import { STT_SAMPLE_RATE, type SttEngine, type SttEvent, type TranscriptionRequest } from './types.ts';
import { WINDOW_SECONDS, type WhisperCppOptions } from './whisper-cpp.ts';

const PART_SAMPLES = WINDOW_SECONDS * STT_SAMPLE_RATE;

export class WhisperRunnerEngine extends RunnerEngine<WhisperCppOptions, TranscriptionRequest, SttEvent> implements SttEngine {
  readonly id = 'whisper-cpp';
  readonly capability = 'stt' as const;

  constructor(
    private readonly options: WhisperCppOptions,
    private readonly logger: Logger,
    metrics?: Metrics,
    supervision?: RunnerSupervision,
  ) {
    super({
      capability: 'stt',
      kind: 'Whisper',
      what: 'speech-to-text',
      modelName: path.basename(options.model),
      entry: siblingEntry(import.meta.url, 'stt-runner'),
      serialization: 'advanced',
      outputLevel: 'info',
      logger,
      metrics,
      ...supervision,
    });
  }

  /** Finds (or downloads) and checks the model file here, then starts the runner on it. Never rejects. */
  load(): Promise<void> {
    return this.startRunner(this.options.model, this.logger, async () => {
      const { file } = await resolveWhisperModel(this.options.model, { ...this.options.hf, logger: this.logger, variable: this.options.setting ?? 'model' });
      return { ...this.options, model: file };
    });
  }

  transcribe(request: TranscriptionRequest, signal: AbortSignal): AsyncIterable<SttEvent> {
    // the samples follow in 30 s parts: measured ~2× faster than one message for long files
    // (docs/benchmarks.md), and no serialization buffer the size of the whole file
    const parts: Float32Array[] = [];
    for (let offset = 0; offset < request.audio.length; offset += PART_SAMPLES) parts.push(request.audio.subarray(offset, offset + PART_SAMPLES));
    return this.runner.stream({ ...request, audio: new Float32Array(0) }, signal, parts);
  }
}
