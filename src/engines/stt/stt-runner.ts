/**
 * The Whisper runner: a child process (forked by whisper-runner.ts through runner/supervisor.ts)
 * that holds one whisper.cpp model through the same WhisperCppEngine the gateway uses inline — its
 * window scheduling (STT_PARALLEL), NaN guard and padding included — and serves transcriptions
 * over the IPC channel (runner/child.ts), one `segment` event per decoded segment, window by window.
 */
import { ApiError } from '../../errors.ts';
import { serveRunner } from '../runner/child.ts';
import type { SttEvent, TranscriptionRequest } from './types.ts';
import { WhisperCppEngine, type WhisperCppOptions } from './whisper-cpp.ts';

let engine: WhisperCppEngine | undefined;

serveRunner<WhisperCppOptions, TranscriptionRequest, SttEvent>('stt-runner', {
  async load(options, logger) {
    engine = new WhisperCppEngine(options, logger);
    await engine.load();
    return engine.state();
  },
  run(request, signal) {
    if (!engine) throw ApiError.unavailable('Whisper runner has no model loaded', 'engine_unavailable');
    return engine.transcribe(request, signal);
  },
  assemble(request, parts) {
    const audio = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
    let offset = 0;
    for (const part of parts) {
      audio.set(part, offset);
      offset += part.length;
    }
    return { ...request, audio };
  },
  close: () => engine?.close() ?? Promise.resolve(),
});
