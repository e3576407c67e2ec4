/**
 * Multipart audio uploads for the speech-to-text routes: @fastify/multipart with the configured
 * limits, fields attached to the body (the file as a Buffer), so the route's zod schema validates
 * the whole form. The OpenAPI document shows the form (file as binary).
 */
import multipart from '@fastify/multipart';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { ApiError } from '../errors.ts';

/** The 413 for an uploaded audio file over its limit (every upload route: multipart here, the jobs route, base64 in jobs). */
export function uploadTooLarge(size: string, limit: number, setting: string, param: string): ApiError {
  return new ApiError(413, 'invalid_request_error', `The audio is ${size}; the limit is ${limit} bytes (${setting}).`, { param, code: 'audio_too_large' });
}

/** The upload limit of each request on a route that parses its form here (for the error handler). */
const uploadLimits = new WeakMap<FastifyRequest, number>();

/**
 * The envelope for @fastify/multipart's own "file too large" (FST_REQ_FILE_TOO_LARGE, thrown as
 * the file passes MAX_UPLOAD_BYTES while the form is parsed), or undefined for any other error.
 */
export function multipartTooLarge(error: unknown, request: FastifyRequest): ApiError | undefined {
  const limit = uploadLimits.get(request);
  if ((error as { code?: unknown } | undefined)?.code !== 'FST_REQ_FILE_TOO_LARGE' || limit === undefined) return undefined;
  return uploadTooLarge(`over ${limit} bytes`, limit, 'MAX_UPLOAD_BYTES', 'file');
}

export async function registerMultipart(app: FastifyInstance, maxUploadBytes: number): Promise<void> {
  await app.register(multipart, {
    attachFieldsToBody: 'keyValues',
    limits: { fileSize: maxUploadBytes, files: 1, fields: 32, parts: 40, fieldSize: 64 * 1024 },
    throwFileSizeLimit: true,
  });
  app.addHook('onRequest', (request, _reply, done) => {
    uploadLimits.set(request, maxUploadBytes);
    done();
  });
}

/** The uploaded file (a Buffer once parsed), documented as binary. */
export const audioFileField = z
  .custom<Buffer>((v) => Buffer.isBuffer(v), { message: 'must be an uploaded audio file (multipart field "file")' })
  .meta({ type: 'string', format: 'binary', description: 'The audio: wav, mp3, flac, ogg (vorbis/opus), webm/opus, m4a/aac.' });

/** A form field that may come as text; numbers and booleans arrive as strings. */
export const formNumber = z.union([z.number(), z.string().trim().regex(/^-?\d+(\.\d+)?$/).transform(Number)]);

/** What a form boolean accepts, as the environment's booleans do (src/config.ts): OpenAI's SDKs send true/false. */
const TRUE = new Set(['true', '1', 'yes', 'on']);
const FALSE = new Set(['false', '0', 'no', 'off']);
const BOOLEAN_MESSAGE = 'must be true or false (also 1/0, yes/no, on/off, any case)';

export const formBoolean = z.union([z.boolean(), z.string()], { error: BOOLEAN_MESSAGE }).transform((value, ctx) => {
  if (typeof value === 'boolean') return value;
  const word = value.trim().toLowerCase();
  if (TRUE.has(word) || FALSE.has(word)) return TRUE.has(word);
  // one message that says what is accepted (a union's own is only "Invalid input")
  ctx.addIssue({ code: 'custom', message: BOOLEAN_MESSAGE });
  return z.NEVER;
});
