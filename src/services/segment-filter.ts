/**
 * Drops segments that are silence, not text, by OpenAI's reference decoder's rule (whisper's
 * transcribe.py, as faster-whisper and whisper.cpp 1.9 apply it): a segment whose window had
 * P(no speech) above `noSpeech` AND whose tokens averaged a log-probability below `logprob` is a
 * hallucination on silence. Either alone is not enough: quiet but confidently decoded speech keeps
 * its text, and so does a window the model thought was speech. Engines that report no
 * `no_speech_prob` (null) are never filtered.
 */
import type { Transcript, TranscriptSegment } from '../engines/stt/types.ts';

export interface SegmentThresholds {
  noSpeech: number;
  logprob: number;
}

export function isSilence(s: TranscriptSegment, t: SegmentThresholds): boolean {
  return s.noSpeechProb !== null && s.noSpeechProb > t.noSpeech && s.avgLogprob < t.logprob;
}

/** Renumbers the segments that pass, as they stream (ids stay 0, 1, 2… without gaps). */
export class SegmentFilter {
  private kept = 0;
  constructor(private readonly thresholds: SegmentThresholds) {}

  /** The segment with its new id, or null when it is dropped. */
  pass(segment: TranscriptSegment): TranscriptSegment | null {
    return isSilence(segment, this.thresholds) ? null : { ...segment, id: this.kept++ };
  }

  /** The whole transcript without the dropped segments, their text and their words. */
  static apply(t: Transcript, thresholds: SegmentThresholds): Transcript {
    const segments = t.segments.filter((s) => !isSilence(s, thresholds));
    if (segments.length === t.segments.length) return t;
    const inKept = (w: { start: number; end: number }) => segments.some((s) => w.start >= s.start - 1e-6 && w.end <= s.end + 1e-6);
    return {
      ...t,
      text: segments.map((s) => s.text).join('').trim(),
      segments: segments.map((s, id) => ({ ...s, id })),
      ...(t.words ? { words: t.words.filter(inKept) } : {}),
    };
  }
}
