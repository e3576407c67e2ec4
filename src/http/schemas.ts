/** Schema fragments shared by several routes (HTTP and WebSocket), so each is written once. */
import { z } from 'zod';
import { durationMs, KEEP_ALIVE_MESSAGE, KEEP_ALIVE_PATTERN, keepAliveMs } from '../config.ts';
import { WHISPER_CODES } from '../engines/stt/languages.ts';
import { ApiError, errorEnvelopeSchema } from '../errors.ts';

export const speedSchema = z.number().min(0.25).max(4).describe('Speaking speed, 0.25–4.0 (1 = normal).');

/** Base64 in a JSON body, standard or URL-safe alphabet, padding optional. */
const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/;
export const base64Schema = z.string().regex(BASE64, 'must be base64');
/** The same, not empty (checked first, so an empty string is reported as too small). */
export const nonEmptyBase64Schema = z.string().min(1).regex(BASE64, 'must be base64');

/**
 * The body limit of a route that takes audio as base64 in JSON: the upload limit grown by base64's
 * 4/3, plus room for the other fields. The decoded size is checked again with `assertAudioSize`.
 */
export function base64BodyLimit(maxUploadBytes: number): number {
  return Math.ceil((maxUploadBytes * 4) / 3) + 65_536;
}

/** 413 `audio_too_large` for decoded base64 audio over MAX_UPLOAD_BYTES (multipart enforces it while streaming). */
export function assertAudioSize(file: Buffer, maxUploadBytes: number): void {
  if (file.length > maxUploadBytes) throw new ApiError(413, 'invalid_request_error', `The audio is ${file.length} bytes; the limit is ${maxUploadBytes} (MAX_UPLOAD_BYTES).`, { param: 'audio_base64', code: 'audio_too_large' });
}

/**
 * A spoken language: one of Whisper's codes (ISO-639-1, and haw/yue), any case. A code Whisper does
 * not know is refused here, naming the field and the valid codes, rather than passed on to fail in
 * (or be ignored by) the engine.
 */
const KNOWN_LANGUAGES = new Set(WHISPER_CODES);
const LANGUAGE_MESSAGE = `must be one of Whisper's language codes (ISO-639-1; listed in docs/api.md#languages): ${WHISPER_CODES.join(', ')}`;
const isKnownLanguage = (value: string) => KNOWN_LANGUAGES.has(value.toLowerCase());
/** In HTTP bodies and forms: trimmed. */
export const languageSchema = z.string().trim().max(16).refine(isKnownLanguage, LANGUAGE_MESSAGE);

/** The request's `model`: picks one of GET /v1/models by id or alias (absent: the default model). */
export const llmModelSchema = z.string().max(256).optional().describe('Which text model answers: an id or alias of GET /v1/models (absent: the default). Without a models file any name picks the one model; with one, an unknown name gets 404 `model_not_found`.');
export const sttModelSchema = z.string().max(256).optional().describe('Which speech-to-text model answers: an id or alias of GET /v1/models; `whisper-1`, `gpt-4o-mini-transcribe`, `gpt-4o-transcribe` pick the default. Without a models file any name picks the one model; with one, an unknown name gets 404 `model_not_found`.');
/** In WebSocket queries and messages. */
export const wsLanguageSchema = z.string().max(16).refine(isKnownLanguage, LANGUAGE_MESSAGE);

/** One transcript segment as the routes answer it (see transcript-formats.ts `segmentView`). */
export const transcriptSegmentSchema = z.object({
  id: z.number().int(),
  start: z.number(),
  end: z.number(),
  text: z.string(),
  avg_logprob: z.number(),
  no_speech_prob: z.number().nullable(),
});

/** The error envelope for each of these statuses, for a route's `response` map. */
export function errorResponses<const Codes extends readonly number[]>(...codes: Codes): { [C in Codes[number]]: typeof errorEnvelopeSchema } {
  return Object.fromEntries(codes.map((code) => [code, errorEnvelopeSchema])) as { [C in Codes[number]]: typeof errorEnvelopeSchema };
}

/**
 * The request's `keep_alive` (Ollama's semantics): how long its model stays loaded after this
 * request, overriding MODEL_KEEP_ALIVE for that model from now on (applied once the engine accepted
 * the request). A duration (`30s`, `5m`, `1h`), a number of seconds, `0` (unload right after this
 * request), or a negative value or one longer than a timer holds (~24.8 days): keep loaded. Parsed to
 * ms (-1: forever).
 */
export const keepAliveSchema = z
  .union([z.number(), z.string().trim().toLowerCase().regex(KEEP_ALIVE_PATTERN, KEEP_ALIVE_MESSAGE)], { error: KEEP_ALIVE_MESSAGE })
  .transform((v) => (typeof v === 'number' ? keepAliveMs(Math.round(v * 1000)) : durationMs(v)))
  .optional()
  .describe('How long the model stays loaded after this request (Ollama\'s `keep_alive`), overriding MODEL_KEEP_ALIVE for that model from now on, once the engine has accepted the request (a request refused with a 4xx changes nothing): a duration such as `30s`, `5m`, `1h`, a number of seconds, `0` (unload right after this request), or any negative value (keep loaded); longer than 2^31-1 ms (~24.8 days) also keeps it loaded. Applies to every model in a runner process (LLM and Whisper).');
