/**
 * Asynchronous transcription jobs (src/jobs): submit a long recording, then poll, follow (SSE) or
 * wait for a webhook. Multipart uploads are streamed to JOB_STORAGE_DIR as they arrive (up to
 * JOB_MAX_UPLOAD_BYTES, never held in memory); JSON with `audio_base64` is for small files (the
 * synchronous MAX_UPLOAD_BYTES). Jobs belong to the API key that made them: another key gets 404.
 */
import multipart from '@fastify/multipart';
import type { FastifyRequest } from 'fastify';
import { validatorCompiler, type FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { Readable } from 'node:stream';
import { z } from 'zod';
import { sniffContainer } from '../audio/decode.ts';
import { ApiError, errorEnvelopeSchema } from '../errors.ts';
import { FINAL_STATUSES, JOB_ID_PATTERN, JOB_STATUSES, type JobOptions, type JobRef } from '../jobs/records.ts';
import type { JobService } from '../jobs/service.ts';
import type { Webhooks } from '../jobs/webhooks.ts';
import { tenantOf } from '../tenancy.ts';
import { audioFileField, formNumber, uploadTooLarge } from './multipart-audio.ts';
import { base64BodyLimit, languageSchema } from './schemas.ts';
import { clientSignal } from './request-signal.ts';
import { sendSse, type SseEvent } from './streaming.ts';
import { RESPONSE_FORMATS } from './transcript-formats.ts';

export interface JobRoutesOptions {
  jobs: JobService;
  webhooks: Webhooks;
  maxUploadBytes: number;
  /** The synchronous limit, which bounds JSON (base64) submissions: they are held in memory. */
  maxJsonUploadBytes: number;
  describe: () => { queue: string; durable: boolean };
  /** The id of the speech-to-text model a name picks; throws 404 `model_not_found` for an unknown one (at submit, not in the worker). */
  sttModelId: (name: string) => string;
}

const granularity = z.enum(['word', 'segment']);
const jobFields = {
  model: z.string().max(256).optional().describe('Which speech-to-text model transcribes: an id or alias of GET /v1/models (`whisper-1` picks the default); with a models file an unknown name is refused at once (404 `model_not_found`). The job reports the id it resolved to.'),
  language: languageSchema.optional().describe('Spoken language (ISO-639-1); detected in the first window when absent.'),
  prompt: z.string().max(2000).optional().describe('Text to guide spelling and style (whisper initial prompt, given to every window).'),
  temperature: formNumber.pipe(z.number().min(0).max(1)).optional().describe('Sampling temperature, 0–1.'),
  response_format: z.enum(RESPONSE_FORMATS).optional().describe('Format of `result` once completed (default json).'),
  'timestamp_granularities[]': z.union([granularity, z.array(granularity)]).optional().describe('`word` fills `words` (with verbose_json).'),
  timestamp_granularities: z.union([granularity, z.array(granularity)]).optional(),
  webhook_url: z.string().max(2048).optional().describe('Called (POST, signed: X-Webhook-Signature) when the job finishes; only hosts on JOB_WEBHOOK_ALLOWED_HOSTS.'),
};
const fieldsSchema = z.object(jobFields);

export const jobForm = z.object({ file: audioFileField, ...jobFields }).meta({ id: 'TranscriptionJobForm' });
export const jobJson = z
  .object({
    audio_base64: z.string().min(1).regex(/^[A-Za-z0-9+/_-]+={0,2}$/, 'must be base64').describe('The audio file, base64 (small files; send large ones as multipart).'),
    ...jobFields,
  })
  .meta({ id: 'TranscriptionJobJson' });

const segmentSchema = z.object({ id: z.number().int(), start: z.number(), end: z.number(), text: z.string(), avg_logprob: z.number(), no_speech_prob: z.number().nullable() });
const jobSummary = z.object({
  id: z.string(),
  object: z.literal('transcription.job'),
  status: z.enum(JOB_STATUSES),
  created_at: z.number().int().describe('Unix seconds.'),
  started_at: z.number().int().nullable(),
  finished_at: z.number().int().nullable(),
  expires_at: z.number().int().nullable().describe('When a finished job and its result are deleted (JOB_RESULT_TTL_SECONDS after it finished).'),
  model: z.string().nullable(),
  response_format: z.enum(RESPONSE_FORMATS),
  progress: z.object({
    audio_seconds_done: z.number(),
    audio_seconds_total: z.number().nullable().describe('null until the audio is decoded.'),
    windows_done: z.number().int().describe('30 s windows transcribed (each is a checkpoint a resumed job starts after).'),
    windows_total: z.number().int().nullable(),
  }),
  timings: z.object({ queued_seconds: z.number().nullable(), running_seconds: z.number().nullable() }),
  attempts: z.number().int().describe('Workers that took the job up; more than 1 after a worker was lost and another resumed it.'),
  webhook_url: z.string().nullable(),
  error: z.object({ message: z.string(), type: z.string(), code: z.string().nullable(), param: z.string().nullable() }).nullable(),
});
export const jobSchema = jobSummary
  .extend({
    language: z.string().nullable(),
    segments: z.array(segmentSchema).describe('The segments so far (all of them once completed).'),
    result: z.unknown().optional().describe('Once completed: the transcript in `response_format` (an object for json/verbose_json, a string for text/srt/vtt).'),
  })
  .meta({ id: 'TranscriptionJob' });
const jobList = z
  .object({ object: z.literal('list'), data: z.array(jobSummary), first_id: z.string().nullable(), last_id: z.string().nullable(), has_more: z.boolean() })
  .meta({ id: 'TranscriptionJobList' });
const accepted = z.object({ id: z.string(), object: z.literal('transcription.job'), status: z.literal('queued') }).meta({ id: 'TranscriptionJobAccepted' });
const idParams = z.object({ id: z.string().max(128).describe('The job id (`job_…`).') });

function granularities(fields: { 'timestamp_granularities[]'?: string | string[]; timestamp_granularities?: string | string[] }): Set<string> {
  return new Set([fields['timestamp_granularities[]'], fields.timestamp_granularities].flat().filter((v): v is string => typeof v === 'string'));
}

/** The zod validator, except that a body the handler reads itself (multipart: none parsed here) passes. */
function streamedBodyValidator(route: Parameters<typeof validatorCompiler>[0] & { httpPart?: string }) {
  const validate = validatorCompiler(route);
  return route.httpPart === 'body' ? (data: unknown) => (data === undefined || data === null ? { value: undefined } : validate(data)) : validate;
}

const tooLarge = uploadTooLarge;

export const jobRoutes: FastifyPluginAsyncZod<JobRoutesOptions> = async (app, options) => {
  const { jobs, webhooks } = options;
  // files are streamed (no attachFieldsToBody): the route reads the parts itself
  await app.register(multipart, { limits: { fileSize: options.maxUploadBytes, files: 1, fields: 32, parts: 40, fieldSize: 64 * 1024 }, throwFileSizeLimit: true });

  const refOf = (request: FastifyRequest, id: string): JobRef => {
    if (!JOB_ID_PATTERN.test(id)) throw new ApiError(404, 'not_found_error', `No transcription job ${id.slice(0, 64)}.`, { param: 'id', code: 'job_not_found' });
    return { tenant: tenantOf(request) ?? null, id };
  };

  /** Reads a multipart body: the file streamed into storage, the other fields collected. */
  async function readMultipart(request: FastifyRequest, uploadKey: string): Promise<{ fields: Record<string, unknown>; bytes: number | undefined }> {
    const fields: Record<string, unknown> = {};
    let bytes: number | undefined;
    try {
      for await (const part of request.parts()) {
        if (part.type === 'file') {
          if (part.fieldname !== 'file') {
            part.file.resume();
            throw ApiError.badRequest(`Unexpected file field "${part.fieldname}"; the audio goes in "file".`, part.fieldname, 'unexpected_file');
          }
          bytes = await jobs.records.storage.writeStream(uploadKey, part.file);
        } else {
          const previous = fields[part.fieldname];
          fields[part.fieldname] = previous === undefined ? part.value : [previous, part.value].flat();
        }
      }
    } catch (error) {
      // the limit stops the stream as soon as it is passed (the partial file is dropped)
      if ((error as { code?: string }).code === 'FST_REQ_FILE_TOO_LARGE') throw tooLarge(`over ${options.maxUploadBytes} bytes`, options.maxUploadBytes, 'JOB_MAX_UPLOAD_BYTES', 'file');
      throw error;
    }
    return { fields, bytes };
  }

  app.post(
    '/v1/audio/transcriptions/jobs',
    {
      schema: {
        tags: ['openai'],
        summary: 'Submit a transcription job (asynchronous)',
        description:
          'For recordings too long for one request: multipart/form-data with `file` (streamed to storage; up to JOB_MAX_UPLOAD_BYTES, decoded audio up to JOB_MAX_AUDIO_SECONDS) or JSON with `audio_base64` (up to MAX_UPLOAD_BYTES), plus the options of /v1/audio/transcriptions and an optional `webhook_url`. Answers 202 at once; follow the job with GET …/jobs/{id}, GET …/jobs/{id}/events (SSE) or the webhook. Workers transcribe it in 30 s windows, checkpointed: with REDIS_URL a job survives the loss of its worker and resumes on another. 413 too large, 415 unrecognized audio, 400 bad options or a webhook host that is not allowed.',
        consumes: ['multipart/form-data', 'application/json'],
        body: z.union([jobForm, jobJson]),
        response: { 202: accepted, 400: errorEnvelopeSchema, 404: errorEnvelopeSchema, 413: errorEnvelopeSchema, 415: errorEnvelopeSchema, 503: errorEnvelopeSchema },
      },
      // a route option (inside `schema` Fastify ignores it): JSON bodies carry up to an upload's worth of base64
      bodyLimit: base64BodyLimit(options.maxJsonUploadBytes),
      // a multipart body is read by the handler (streamed), so there is no parsed body to validate;
      // JSON bodies are validated by the schema as usual
      validatorCompiler: streamedBodyValidator as never,
    },
    async (request, reply) => {
      const { ref, uploadKey } = jobs.reserve(tenantOf(request) ?? null);
      const storage = jobs.records.storage;
      try {
        let fields: z.infer<typeof fieldsSchema>;
        let bytes: number;
        if (request.isMultipart()) {
          const read = await readMultipart(request, uploadKey);
          const parsed = fieldsSchema.safeParse(read.fields);
          if (!parsed.success) {
            const issue = parsed.error.issues[0]!;
            const param = issue.path.join('.') || null;
            throw ApiError.badRequest(`${param ?? 'form'}: ${issue.message}`, param);
          }
          if (read.bytes === undefined) throw ApiError.badRequest('file: must be an uploaded audio file (multipart field "file")', 'file', 'invalid_value');
          fields = parsed.data;
          bytes = read.bytes;
        } else {
          const body = request.body as z.infer<typeof jobJson>;
          const audio = Buffer.from(body.audio_base64, 'base64');
          if (audio.length > options.maxJsonUploadBytes) throw tooLarge(`${audio.length} bytes`, options.maxJsonUploadBytes, 'MAX_UPLOAD_BYTES; send larger files as multipart', 'audio_base64');
          await storage.writeStream(uploadKey, Readable.from([audio]));
          fields = body;
          bytes = audio.length;
        }
        const param = request.isMultipart() ? 'file' : 'audio_base64';
        if (bytes === 0) throw ApiError.badRequest('The audio file is empty.', param, 'empty_audio');
        // the container is known from the first bytes: refuse what no worker could decode now, not later
        if (!sniffContainer(await storage.readRange(uploadKey, 0, 64))) {
          throw new ApiError(415, 'invalid_request_error', 'Unsupported or unrecognized audio format. Send wav, mp3, flac, ogg (vorbis/opus), webm/opus, m4a/aac.', { param, code: 'unsupported_audio_format' });
        }
        const webhookUrl = fields.webhook_url === undefined ? undefined : webhooks.check(fields.webhook_url).href;
        const jobOptions: JobOptions = {
          // resolved now: an unknown model is a 404 here, not a failed job later; the worker uses this id
          ...(fields.model ? { model: options.sttModelId(fields.model) } : {}),
          ...(fields.language ? { language: fields.language.toLowerCase() } : {}),
          ...(fields.prompt ? { prompt: fields.prompt } : {}),
          ...(fields.temperature !== undefined ? { temperature: fields.temperature } : {}),
          response_format: fields.response_format ?? 'json',
          words: granularities(fields).has('word'),
        };
        await jobs.submit(ref, bytes, jobOptions, webhookUrl);
      } catch (error) {
        await jobs.records.remove(ref).catch(() => undefined);
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS' || code === 'ENOSPC' || code === 'EDQUOT' || code === 'ENOTDIR') {
          request.log.error({ err: error }, 'job storage failed');
          throw ApiError.unavailable(`The job storage (JOB_STORAGE_DIR) cannot take the file now (${code}).`, 'job_storage_unavailable');
        }
        throw error;
      }
      return reply.code(202).header('Location', `/v1/audio/transcriptions/jobs/${ref.id}`).send({ id: ref.id, object: 'transcription.job' as const, status: 'queued' as const });
    },
  );

  app.get(
    '/v1/audio/transcriptions/jobs',
    {
      schema: {
        tags: ['openai'],
        summary: 'List your transcription jobs',
        description: 'The caller\'s jobs (those of its API key), newest first, `limit` per page; pass the last id as `after` for the next page.',
        querystring: z.object({
          limit: z.coerce.number().int().min(1).max(100).default(20),
          after: z.string().max(128).optional().describe('A job id: list the jobs after it.'),
        }),
        response: { 200: jobList, 400: errorEnvelopeSchema },
      },
    },
    async (request) => jobs.list(tenantOf(request) ?? null, request.query.limit, request.query.after),
  );

  app.get(
    '/v1/audio/transcriptions/jobs/:id',
    {
      schema: {
        tags: ['openai'],
        summary: 'A transcription job: status, progress, segments so far, result',
        description:
          'The job of this API key (404 for an unknown id, another key\'s job, or one expired after JOB_RESULT_TTL_SECONDS): `status` (queued, running, completed, failed, cancelled), `progress` in audio seconds and 30 s windows, `segments` transcribed so far, `timings`, `attempts`, `error` when failed, and once completed `result` in the requested `response_format`.',
        params: idParams,
        response: { 200: jobSchema, 404: errorEnvelopeSchema },
      },
    },
    async (request) => {
      const ref = refOf(request, request.params.id);
      return jobs.detail(await jobs.get(ref));
    },
  );

  app.delete(
    '/v1/audio/transcriptions/jobs/:id',
    {
      schema: {
        tags: ['openai'],
        summary: 'Cancel a transcription job, or forget a finished one',
        description: 'A queued job is cancelled at once; a running one stops at the end of its current 30 s window (200 with the job; it turns `cancelled` shortly). A finished job is deleted with its audio and result (204), also one that finishes as the DELETE comes (a cancel never promised and then ignored); 409 `job_finishing` only if the worker finishing it was lost in that instant.',
        params: idParams,
        response: { 200: jobSummary, 204: z.null().describe('Forgotten.'), 404: errorEnvelopeSchema, 409: errorEnvelopeSchema },
      },
    },
    async (request, reply) => {
      const ref = refOf(request, request.params.id);
      const outcome = await jobs.cancel(ref);
      if (outcome.forgotten || !outcome.record) return reply.code(204).send(null);
      return jobs.summary(outcome.record);
    },
  );

  app.get(
    '/v1/audio/transcriptions/jobs/:id/events',
    {
      schema: {
        tags: ['openai'],
        summary: 'Follow a transcription job (Server-Sent Events)',
        description:
          'text/event-stream: `status` when the job\'s status changes, `segment` for each transcribed segment (in order, from the start: a late subscriber gets the earlier ones first), `progress` after each 30 s window, then `done` with the final job (completed, failed or cancelled) and the stream ends.',
        params: idParams,
        response: { 200: { description: 'text/event-stream', content: { 'text/event-stream': { schema: z.string() } } }, 404: errorEnvelopeSchema },
      },
    },
    async (request, reply) => {
      const ref = refOf(request, request.params.id);
      await jobs.get(ref); // 404 before the stream starts
      const signal = clientSignal(reply);
      signal.addEventListener('abort', () => request.log.debug({ job_id: ref.id }, 'job events: the client left; stream stopped'), { once: true });
      return sendSse(request, reply, follow(jobs, ref, signal, request.id));
    },
  );
};

const POLL_MS = 250;

/**
 * The job's events, read from the shared storage (any replica can serve them, whichever worker
 * runs the job). Stops when the job finishes, disappears, or the client goes away.
 */
async function* follow(jobs: JobService, ref: JobRef, signal: AbortSignal, requestId: string): AsyncIterable<SseEvent> {
  let status: string | undefined;
  let windowsSent = 0;
  let segmentsSent = 0;
  while (!signal.aborted) {
    const record = await jobs.records.get(ref);
    if (!record) {
      yield { event: 'error', data: new ApiError(404, 'not_found_error', `The transcription job ${ref.id} was deleted.`, { code: 'job_not_found' }).envelope(requestId) };
      return;
    }
    if (record.status !== status) {
      status = record.status;
      yield { event: 'status', data: { id: record.id, status: record.status } };
    }
    if (record.windows_done > windowsSent) {
      // up to what this record says: a window checkpointed since it was read comes with the next
      // record (and its progress), so the last progress event always says every window
      const windows = (await jobs.records.windows(ref)).slice(windowsSent, record.windows_done);
      for (const w of windows) {
        for (const s of w.segments) yield { event: 'segment', data: { id: segmentsSent++, start: s.start, end: s.end, text: s.text, avg_logprob: s.avgLogprob, no_speech_prob: s.noSpeechProb } };
      }
      windowsSent += windows.length;
      const view = jobs.summary(record);
      yield { event: 'progress', data: { id: record.id, ...view.progress } };
    }
    if (FINAL_STATUSES.has(record.status)) {
      yield { event: 'done', data: jobs.summary(record) };
      return;
    }
    await new Promise<void>((resolve) => {
      // one listener per wait, removed when the wait ends (a listener per poll would pile up)
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, POLL_MS);
      signal.addEventListener('abort', done, { once: true });
    });
  }
}
