/**
 * A dialogue turn's result as the clients see it, shared by POST /v1/dialogue (JSON and the SSE
 * `done` event) and /ws/dialogue's `reply.done`.
 */
import type { DialogueResult } from '../dialogue/pipeline.ts';
import type { Transcript } from '../engines/stt/types.ts';
import { segmentView } from './transcript-formats.ts';

export function transcriptView(t: Transcript) {
  return {
    text: t.text,
    language: t.language,
    duration: t.duration,
    segments: t.segments.map((s) => segmentView(s)),
  };
}

export function resultView(r: DialogueResult, withAudio: boolean) {
  return {
    session_id: r.session_id,
    transcript: r.transcript ? transcriptView(r.transcript) : null,
    reply_text: r.reply_text,
    audio_base64: withAudio && r.audio ? r.audio.bytes.toString('base64') : null,
    audio_format: r.audio?.format ?? null,
    sample_rate: r.audio?.sample_rate ?? null,
    duration_seconds: r.audio?.duration_seconds ?? null,
    no_speech: r.no_speech,
    degraded: r.degraded,
    engines: r.engines,
    usage: r.usage,
    timings: r.timings,
  };
}
