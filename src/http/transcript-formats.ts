/** Transcripts in the response formats clients ask for: json, text, srt, vtt, verbose_json. */
import { languageName } from '../engines/stt/languages.ts';
import zlib from 'node:zlib';
import type { Transcript, TranscriptSegment } from '../engines/stt/types.ts';

export const RESPONSE_FORMATS = ['json', 'text', 'srt', 'verbose_json', 'vtt'] as const;
export type ResponseFormat = (typeof RESPONSE_FORMATS)[number];

function clock(seconds: number, separator: ',' | '.'): string {
  const ms = Math.round(seconds * 1000);
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${pad(Math.floor(ms / 3_600_000))}:${pad(Math.floor(ms / 60_000) % 60)}:${pad(Math.floor(ms / 1000) % 60)}${separator}${pad(ms % 1000, 3)}`;
}

export function toSrt(t: Transcript): string {
  return t.segments.map((s, i) => `${i + 1}\n${clock(s.start, ',')} --> ${clock(s.end, ',')}\n${s.text.trim()}\n`).join('\n');
}

export function toVtt(t: Transcript): string {
  return `WEBVTT\n\n${t.segments.map((s) => `${clock(s.start, '.')} --> ${clock(s.end, '.')}\n${s.text.trim()}\n`).join('\n')}`;
}

/** gzip-style compression ratio of a segment's text, as Whisper reports it (high = repetitive). */
function compressionRatio(text: string): number {
  const bytes = Buffer.from(text, 'utf8');
  return bytes.length === 0 ? 0 : bytes.length / zlib.deflateSync(bytes).length;
}

/**
 * A segment as our JSON routes and sockets show it; `offsetMs` places it on a longer stream's
 * timeline (WebSocket turns), rounded to the millisecond.
 */
export function segmentView(s: TranscriptSegment, offsetMs = 0) {
  const at = (t: number) => (offsetMs ? +(t + offsetMs / 1000).toFixed(3) : t);
  return { id: s.id, start: at(s.start), end: at(s.end), text: s.text, avg_logprob: s.avgLogprob, no_speech_prob: s.noSpeechProb };
}

/** OpenAI's verbose_json shape. */
export function toVerboseJson(t: Transcript, task: 'transcribe' | 'translate', temperature: number) {
  return {
    task,
    language: languageName(t.language),
    duration: t.duration,
    text: t.text,
    segments: t.segments.map((s) => ({
      id: s.id,
      seek: Math.floor(s.start / 30) * 3000,
      start: s.start,
      end: s.end,
      text: s.text,
      tokens: s.tokens ?? [],
      temperature,
      avg_logprob: s.avgLogprob,
      compression_ratio: compressionRatio(s.text),
      no_speech_prob: s.noSpeechProb,
    })),
    ...(t.words ? { words: t.words } : {}),
  };
}
