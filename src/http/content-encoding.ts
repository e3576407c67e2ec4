/**
 * Compressed request bodies (`Content-Encoding: gzip`, `deflate`, `br`) are decoded before parsing.
 * OpenAI's SDKs send plain bodies, but HTTP clients and proxies in front of a self-hosted server do
 * compress large JSON (audio_base64, long chats), and refusing them would break those for no gain.
 *
 * The size limit (MAX_BODY_BYTES, or the route's own) holds for the DECODED bytes, counted while
 * inflating: a gzip bomb stops at the limit with 413 `body_too_large` — the inflater is destroyed
 * there, so neither its memory nor its CPU grows with what the bomb claims. A corrupt stream is a
 * 400 `invalid_content_encoding`; any other encoding, or a compressed multipart body (its parser
 * reads the socket itself), is a 415 `unsupported_content_encoding`.
 */
import type { IncomingMessage } from 'node:http';
import { PassThrough, type Readable, type Transform } from 'node:stream';
import zlib from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import { ApiError } from '../errors.ts';

const DECODERS: Record<string, () => Transform> = {
  gzip: () => zlib.createGunzip(),
  'x-gzip': () => zlib.createGunzip(),
  deflate: () => zlib.createInflate(),
  br: () => zlib.createBrotliDecompress(),
};

const unsupported = (message: string) => new ApiError(415, 'invalid_request_error', message, { param: 'Content-Encoding', code: 'unsupported_content_encoding' });

/** How to stop inflating a request's body whose parser gave up on it (see stopDecoding). */
const stoppers = new WeakMap<IncomingMessage, () => void>();

/**
 * Stops inflating `raw`'s body and lets the rest of it flow into nothing: for the error handler's
 * drain when the body was refused outside this file (Fastify's own 413 counts the wire bytes too,
 * then stops reading the decoded stream, whose backpressure would otherwise hold the raw body).
 */
export function stopDecoding(raw: IncomingMessage): void {
  stoppers.get(raw)?.();
}

/**
 * The decoded body, as Fastify's parsers read it: `receivedEncodedLength` is what came over the wire
 * (checked against Content-Length). The raw body is fed to the inflater by hand, not piped: once it
 * is refused (413, 400) the rest of the raw body keeps flowing into nothing, so the error handler's
 * bounded drain reads it and the client gets its answer instead of a reset (a pipe left the raw
 * stream paused on the destroyed inflater's backpressure).
 */
function decoded(raw: IncomingMessage, payload: Readable, encoding: string, limit: number): Readable {
  const decoder = DECODERS[encoding]!();
  const out = new PassThrough() as PassThrough & { receivedEncodedLength: number };
  out.receivedEncodedLength = 0;
  let bytes = 0;
  let stopped = false;
  const stop = (error?: ApiError) => {
    if (stopped) return;
    stopped = true;
    decoder.destroy();
    out.destroy(error);
    payload.resume();
  };
  stoppers.set(raw, () => stop());
  payload.on('data', (chunk: Buffer) => {
    out.receivedEncodedLength += chunk.length;
    if (stopped || decoder.write(chunk)) return;
    payload.pause();
    decoder.once('drain', () => {
      if (!stopped) payload.resume();
    });
  });
  payload.once('end', () => {
    if (!stopped) decoder.end();
  });
  decoder.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    if (bytes > limit) return stop(new ApiError(413, 'invalid_request_error', `The decoded request body is over ${limit} bytes (MAX_BODY_BYTES).`, { code: 'body_too_large' }));
    if (!out.write(chunk)) {
      decoder.pause();
      out.once('drain', () => decoder.resume());
    }
  });
  decoder.once('end', () => out.end());
  decoder.on('error', (error) => stop(new ApiError(400, 'invalid_request_error', `The request body is not valid ${encoding} data: ${error.message}.`, { param: 'Content-Encoding', code: 'invalid_content_encoding' })));
  payload.once('error', (error) => out.destroy(error));
  // a body no parser reads (a 415 content type) may still fail to inflate: never an unhandled 'error'
  out.on('error', () => undefined);
  return out;
}

export function registerContentEncoding(app: FastifyInstance): void {
  app.addHook('preParsing', (request, _reply, payload, done) => {
    const encoding = request.headers['content-encoding']?.trim().toLowerCase();
    const hasBody = request.headers['transfer-encoding'] !== undefined || Number(request.headers['content-length'] ?? 0) > 0;
    if (!encoding || encoding === 'identity' || !hasBody) return done(null, payload);
    if (!DECODERS[encoding]) return done(unsupported(`Content-Encoding "${encoding.slice(0, 50)}" is not supported; send gzip, deflate, br or an uncompressed body.`));
    if (request.headers['content-type']?.toLowerCase().startsWith('multipart/')) {
      return done(unsupported('A multipart/form-data body cannot be compressed here (audio is compressed already); send it without Content-Encoding.'));
    }
    done(null, decoded(request.raw, payload, encoding, request.routeOptions.bodyLimit ?? app.initialConfig.bodyLimit ?? 1024 * 1024));
  });
}
