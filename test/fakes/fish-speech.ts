/**
 * A local fake of the fish-speech API server (tools/api_server.py), following its published
 * schema (fish_speech/utils/schema.py `ServeTTSRequest`) and behaviour:
 * - POST /v1/tts with application/msgpack, application/json or multipart/form-data; anything else
 *   415 with an Accept header; `Authorization: Bearer <key>` when started with an API key (401).
 * - Field validation as pydantic would (chunk_length 100–1000, top_p 0.1–1, repetition_penalty
 *   0.9–2, temperature 0.1–1, format wav|pcm|mp3|opus, use_memory_cache on|off) → 422.
 * - `streaming: true` only with wav (400 otherwise): a WAV header with zero sizes, then 16-bit PCM
 *   per text chunk; otherwise the whole file (wav or raw pcm).
 * - Errors as `{statusCode, message, error}`; GET /v1/health → {"status":"ok"};
 *   GET /v1/references/list → {success, reference_ids, message}.
 * - POST /v1/references/add {id, audio, text} (any of the three body types) → {success, message,
 *   reference_id}; 409 when the id exists, 400 for an empty id/text/audio or an id outside
 *   `[a-zA-Z0-9-_ ]`; DELETE /v1/references/delete {reference_id} → 200, or 404 when unknown
 *   (views.py: AddReferenceResponse / DeleteReferenceResponse with `success: false` on errors).
 * The "speech" is a 44.1 kHz tone, 60 ms per character, so tests can check what came through.
 * Knobs: per-request delay, scripted failures, a socket cut, malformed audio.
 */
import http from 'node:http';
import { decode } from '@msgpack/msgpack';

export const FISH_SAMPLE_RATE = 44_100;
export const SECONDS_PER_CHAR = 0.06;

export interface FishRequest {
  contentType: string;
  authorization?: string;
  body: Record<string, unknown>;
}

export interface FakeFishSpeech {
  url: string;
  requests: FishRequest[];
  /** Statuses answered (in order) before behaving: 500, 503, ... */
  failures: number[];
  /** Wait this long before answering /v1/tts (ms). */
  delayMs: number;
  /** Wait this long between streamed chunks (ms). */
  chunkDelayMs: number;
  /** Answer 200 with bytes that are not WAV. */
  malformed: boolean;
  /** Destroy the socket after sending the header (mid-stream failure). */
  cutAfterHeader: boolean;
  /** Streams whose client went away before the last chunk. */
  abandoned: number;
  references: string[];
  close: () => Promise<void>;
}

const HTTP_PHRASES: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 415: 'Unsupported Media Type', 422: 'Unprocessable Entity', 500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout' };

function sendError(res: http.ServerResponse, status: number, message: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify({ statusCode: status, message, error: HTTP_PHRASES[status] ?? 'Error' }));
}

function wavHeaderZero(): Buffer {
  const b = Buffer.alloc(44);
  b.write('RIFF', 0, 'latin1');
  b.write('WAVE', 8, 'latin1');
  b.write('fmt ', 12, 'latin1');
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20);
  b.writeUInt16LE(1, 22);
  b.writeUInt32LE(FISH_SAMPLE_RATE, 24);
  b.writeUInt32LE(FISH_SAMPLE_RATE * 2, 28);
  b.writeUInt16LE(2, 32);
  b.writeUInt16LE(16, 34);
  b.write('data', 36, 'latin1');
  return b;
}

/** One text chunk's audio: a 330 Hz tone at 0.3 of full scale. */
function tone(chars: number): Buffer {
  const frames = Math.round(chars * SECONDS_PER_CHAR * FISH_SAMPLE_RATE);
  const b = Buffer.alloc(frames * 2);
  for (let i = 0; i < frames; i++) b.writeInt16LE(Math.round(Math.sin((2 * Math.PI * 330 * i) / FISH_SAMPLE_RATE) * 0.3 * 32767), i * 2);
  return b;
}

/** Splits text into chunks of about `chunkLength` characters at spaces, as fish-speech batches text. */
function textChunks(text: string, chunkLength: number): string[] {
  const words = text.split(/\s+/).filter(Boolean);
  const chunks: string[] = [];
  let current = '';
  for (const word of words) {
    if (current && current.length + 1 + word.length > chunkLength) {
      chunks.push(current);
      current = word;
    } else current = current ? `${current} ${word}` : word;
  }
  if (current) chunks.push(current);
  return chunks;
}

type Problem = string | undefined;
const check = {
  int: (v: unknown, min: number, max: number): Problem => (Number.isInteger(v) && (v as number) >= min && (v as number) <= max ? undefined : `must be an integer in [${min}, ${max}]`),
  num: (v: unknown, min: number, max: number): Problem => (typeof v === 'number' && v >= min && v <= max ? undefined : `must be a number in [${min}, ${max}]`),
  oneOf: (v: unknown, values: string[]): Problem => (typeof v === 'string' && values.includes(v) ? undefined : `must be one of ${values.join(', ')}`),
  bool: (v: unknown): Problem => (typeof v === 'boolean' ? undefined : 'must be a boolean'),
};

/** ServeTTSRequest validation; returns the problems (pydantic would answer 422 with them). */
function validate(body: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const field = (name: string, problem: Problem) => problem && problems.push(`${name}: ${problem}`);
  if (typeof body.text !== 'string') problems.push('text: field required');
  if ('chunk_length' in body) field('chunk_length', check.int(body.chunk_length, 100, 1000));
  if ('format' in body) field('format', check.oneOf(body.format, ['wav', 'pcm', 'mp3', 'opus']));
  if ('latency' in body) field('latency', check.oneOf(body.latency, ['normal', 'balanced']));
  if ('use_memory_cache' in body) field('use_memory_cache', check.oneOf(body.use_memory_cache, ['on', 'off']));
  for (const name of ['normalize', 'streaming', 'stream_tokens']) if (name in body) field(name, check.bool(body[name]));
  if ('top_p' in body) field('top_p', check.num(body.top_p, 0.1, 1));
  if ('repetition_penalty' in body) field('repetition_penalty', check.num(body.repetition_penalty, 0.9, 2));
  if ('temperature' in body) field('temperature', check.num(body.temperature, 0.1, 1));
  if ('max_new_tokens' in body) field('max_new_tokens', check.int(body.max_new_tokens, 0, 1_000_000));
  if ('seed' in body && body.seed !== null) field('seed', check.int(body.seed, -(2 ** 31), 2 ** 31));
  if ('reference_id' in body && body.reference_id !== null && typeof body.reference_id !== 'string') problems.push('reference_id: must be a string');
  if ('references' in body) {
    if (!Array.isArray(body.references)) problems.push('references: must be a list');
    else
      body.references.forEach((r: unknown, i: number) => {
        const ref = r as { audio?: unknown; text?: unknown };
        if (!(ref.audio instanceof Uint8Array) && typeof ref.audio !== 'string') problems.push(`references.${i}.audio: must be bytes`);
        if (typeof ref.text !== 'string') problems.push(`references.${i}.text: field required`);
      });
  }
  return problems;
}

async function parseBody(contentType: string, raw: Buffer): Promise<Record<string, unknown>> {
  if (contentType === 'application/msgpack') return decode(raw) as Record<string, unknown>;
  if (contentType === 'application/json') return JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
  const form = await new Request('http://fake/', { method: 'POST', headers: { 'content-type': contentType }, body: raw }).formData();
  const body: Record<string, unknown> = {};
  for (const [key, value] of form.entries()) body[key] = typeof value === 'string' ? (/^(true|false)$/.test(value) ? value === 'true' : /^-?\d+(\.\d+)?$/.test(value) ? Number(value) : value) : value;
  return body;
}

export async function startFakeFishSpeech(options: { apiKey?: string } = {}): Promise<FakeFishSpeech> {
  const state: FakeFishSpeech = {
    url: '',
    requests: [],
    failures: [],
    delayMs: 0,
    chunkDelayMs: 0,
    malformed: false,
    cutAfterHeader: false,
    abandoned: 0,
    references: ['narrator'],
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => void handle(req, res, Buffer.concat(parts)));
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse, raw: Buffer): Promise<void> {
    const path = (req.url ?? '').split('?')[0];
    if (options.apiKey && req.headers.authorization !== `Bearer ${options.apiKey}`) return sendError(res, 401, 'Invalid or missing API key');
    if (path === '/v1/health') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'ok' }));
    if (path === '/v1/references/list') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify({ success: true, reference_ids: state.references, message: 'Success' }));
    }
    if ((path === '/v1/references/add' && req.method === 'POST') || (path === '/v1/references/delete' && req.method === 'DELETE')) {
      const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      const body = await parseBody(type === 'multipart/form-data' ? req.headers['content-type']! : type, raw).catch(() => ({}) as Record<string, unknown>);
      state.requests.push({ contentType: type, authorization: req.headers.authorization, body });
      const answer = (status: number, fields: Record<string, unknown>) => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(fields));
      if (path.endsWith('/add')) {
        const id = typeof body.id === 'string' ? body.id : '';
        const audio = body.audio instanceof Uint8Array ? body.audio : body.audio instanceof Blob ? new Uint8Array(await body.audio.arrayBuffer()) : undefined;
        if (!id.trim() || typeof body.text !== 'string' || !body.text.trim() || !audio?.length || !/^[a-zA-Z0-9\-_ ]+$/.test(id)) return answer(400, { success: false, message: 'Reference ID, text and audio are required', reference_id: id });
        if (state.references.includes(id)) return answer(409, { success: false, message: `Reference ID '${id}' already exists`, reference_id: id });
        state.references.push(id);
        return answer(200, { success: true, message: `Reference voice '${id}' added successfully`, reference_id: id });
      }
      const id = typeof body.reference_id === 'string' ? body.reference_id : '';
      if (!state.references.includes(id)) return answer(404, { success: false, message: `Reference ID '${id}' not found`, reference_id: id });
      state.references = state.references.filter((r) => r !== id);
      return answer(200, { success: true, message: `Reference voice '${id}' deleted successfully`, reference_id: id });
    }
    if (path !== '/v1/tts' || req.method !== 'POST') return sendError(res, 404, 'Not Found');
    const contentType = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (!['application/msgpack', 'application/json', 'multipart/form-data'].includes(contentType)) {
      return sendError(res, 415, 'Unsupported Media Type', { Accept: 'application/msgpack, application/json, multipart/form-data' });
    }
    let body: Record<string, unknown>;
    try {
      body = await parseBody(contentType === 'multipart/form-data' ? req.headers['content-type']! : contentType, raw);
    } catch (error) {
      return sendError(res, 400, `Malformed body: ${(error as Error).message}`);
    }
    state.requests.push({ contentType, authorization: req.headers.authorization, body });
    if (state.delayMs) await new Promise((r) => setTimeout(r, state.delayMs));
    if (res.destroyed) return;
    const failure = state.failures.shift();
    if (failure) return sendError(res, failure, `scripted failure ${failure}`);
    const problems = validate(body);
    if (problems.length) return sendError(res, 422, problems);
    const format = (body.format as string | undefined) ?? 'wav';
    if (body.streaming === true && format !== 'wav') return sendError(res, 400, 'Streaming only supports WAV format');
    if (format === 'mp3' || format === 'opus') return sendError(res, 500, `the fake does not encode ${format}`);
    const text = body.text as string;
    if (text.trim() === '') return sendError(res, 500, 'No audio generated, please check the input text.');
    if (state.malformed) {
      res.writeHead(200, { 'content-type': 'audio/wav' });
      return void res.end(Buffer.from('this is not audio at all, just text pretending'));
    }
    const chunks = textChunks(text, (body.chunk_length as number | undefined) ?? 200);
    res.writeHead(200, { 'content-type': format === 'wav' ? 'audio/wav' : 'application/octet-stream', 'content-disposition': `attachment; filename=audio.${format}` });
    if (body.streaming === true) {
      res.write(wavHeaderZero());
      if (state.cutAfterHeader) return void res.destroy();
      for (const chunk of chunks) {
        if (state.chunkDelayMs) await new Promise((r) => setTimeout(r, state.chunkDelayMs));
        if (res.destroyed) {
          state.abandoned++;
          return;
        }
        res.write(tone(chunk.length));
      }
      return void res.end();
    }
    const pcm = Buffer.concat(chunks.map((c) => tone(c.length)));
    if (format === 'pcm') return void res.end(pcm);
    const header = wavHeaderZero();
    header.writeUInt32LE(36 + pcm.length, 4);
    header.writeUInt32LE(pcm.length, 40);
    res.end(Buffer.concat([header, pcm]));
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return state;
}
