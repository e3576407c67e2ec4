/**
 * Multipart audio uploads for the speech-to-text routes: @fastify/multipart with the configured
 * limits, fields attached to the body (the file as a Buffer), so the route's zod schema validates
 * the whole form. The OpenAPI document shows the form (file as binary).
 */
import multipart from '@fastify/multipart';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';

export async function registerMultipart(app: FastifyInstance, maxUploadBytes: number): Promise<void> {
  await app.register(multipart, {
    attachFieldsToBody: 'keyValues',
    limits: { fileSize: maxUploadBytes, files: 1, fields: 32, parts: 40, fieldSize: 64 * 1024 },
    throwFileSizeLimit: true,
  });
}

/** The uploaded file (a Buffer once parsed), documented as binary. */
export const audioFileField = z
  .custom<Buffer>((v) => Buffer.isBuffer(v), { message: 'must be an uploaded audio file (multipart field "file")' })
  .meta({ type: 'string', format: 'binary', description: 'The audio: wav, mp3, flac, ogg (vorbis/opus), webm/opus, m4a/aac.' });

/** A form field that may come as text; numbers and booleans arrive as strings. */
export const formNumber = z.union([z.number(), z.string().trim().regex(/^-?\d+(\.\d+)?$/).transform(Number)]);
export const formBoolean = z.union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true')]);
