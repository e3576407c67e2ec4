/**
 * Speech-to-text over HTTP: the native POST /v1/speech-to-text and OpenAI's
 * POST /v1/audio/transcriptions and /v1/audio/translations. Multipart upload → decode to 16 kHz
 * mono → TranscriptionService → the requested format.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { AudioBudget } from '../audio/audio-budget.ts';
import { decodeToWhisperInput, type DecodedAudio } from '../audio/decode.ts';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Transcript, TranscriptSegment } from '../engines/stt/types.ts';
import type { TranscriptionService } from '../services/transcription.ts';
import { audioFileField, formBoolean, formNumber, registerMultipart } from './multipart-audio.ts';
import { clientSignal } from './request-signal.ts';
import { assertAudioSize, keepAliveSchema, sttModelSchema, base64BodyLimit, errorResponses, languageSchema, nonEmptyBase64Schema, transcriptSegmentSchema } from './schemas.ts';
import { sendSse, type SseEvent } from './streaming.ts';
import { AsyncQueue } from '../util/async-queue.ts';
import { RESPONSE_FORMATS, segmentView, toSrt, toVerboseJson, toVtt, type ResponseFormat } from './transcript-formats.ts';

export interface SpeechToTextOptions {
  transcription: TranscriptionService;
  maxUploadBytes: number;
  maxAudioSeconds: number;
  /** MAX_AUDIO_IN_FLIGHT_SECONDS: each request's decoded audio is reserved here until its response closes. */
  audioBudget: AudioBudget;
}

const commonFields = {
  file: audioFileField,
  language: languageSchema.optional().describe('Spoken language (ISO-639-1); detected when absent.'),
  prompt: z.string().max(2000).optional().describe('Text to guide spelling and style (whisper initial prompt).'),
  temperature: formNumber.pipe(z.number().min(0).max(1)).optional().describe('Sampling temperature, 0–1.'),
  vad_filter: formBoolean.optional().describe('Transcribe only the speech regions the VAD finds (faster on sparse audio, no text made up on silence); timestamps still refer to the original audio. Default: STT_VAD_FILTER.'),
  model: sttModelSchema,
  keep_alive: keepAliveSchema,
};

const granularity = z.enum(['word', 'segment']);

export const openAiTranscriptionForm = z
  .object({
    ...commonFields,
    response_format: z.enum(RESPONSE_FORMATS).optional(),
    'timestamp_granularities[]': z.union([granularity, z.array(granularity)]).optional().describe('`word` fills `words` (with verbose_json).'),
    timestamp_granularities: z.union([granularity, z.array(granularity)]).optional(),
    stream: formBoolean.optional().describe('Server-Sent Events: `transcript.text.delta` per decoded segment, then `transcript.text.done`.'),
  })
  .meta({ id: 'TranscriptionForm' });

/** Word timestamps in this route's own json shape too (the OpenAI routes fill them in verbose_json only). */
const wordsFields = {
  'timestamp_granularities[]': z.union([granularity, z.array(granularity)]).optional().describe('`word` adds `words` (word timestamps) to the answer.'),
  timestamp_granularities: z.union([granularity, z.array(granularity)]).optional(),
};

export const speechToTextForm = z.object({ ...commonFields, response_format: z.enum(RESPONSE_FORMATS).optional(), ...wordsFields }).meta({ id: 'SpeechToTextForm' });

/** The same request as JSON, with the audio base64-encoded (for clients that cannot send multipart). */
export const speechToTextJson = z
  .object({
    audio_base64: nonEmptyBase64Schema.describe('The audio file, base64 (standard or URL-safe alphabet).'),
    format: z.string().max(16).optional().describe('Container hint (wav, mp3, ...); the bytes decide.'),
    language: commonFields.language,
    prompt: commonFields.prompt,
    model: commonFields.model,
    keep_alive: commonFields.keep_alive,
    temperature: z.number().min(0).max(1).optional(),
    vad_filter: z.boolean().optional().describe(commonFields.vad_filter.description ?? ''),
    response_format: z.enum(RESPONSE_FORMATS).optional(),
    ...wordsFields,
  })
  .meta({ id: 'SpeechToTextJson', example: { audio_base64: 'UklGRiQAAABXQVZFZm10IBAAAAABAAEAgD4AAAB9AAACABAAZGF0YQAAAAA=', format: 'wav', language: 'en' } });

const segmentSchema = transcriptSegmentSchema.extend({
  no_speech_prob: z.number().nullable().describe('Probability that the window holding the segment has no speech (the model\'s <|nospeech|> token at the start of decoding, as OpenAI computes it); null only when a remote engine omits it.'),
});

export const speechToTextResponse = z
  .object({
    text: z.string(),
    language: z.string(),
    duration: z.number(),
    segments: z.array(segmentSchema),
    words: z.array(z.object({ word: z.string(), start: z.number(), end: z.number() })).optional(),
    engine: z.string().describe('The engine that answered: `whisper-cpp` or `openai`.'),
    model: z.string().describe('The id of the model that answered (see GET /v1/models).'),
  })
  .meta({
    id: 'SpeechToTextResponse',
    example: {
      text: 'Hello from the tiny whisper model.',
      language: 'en',
      duration: 2,
      segments: [{ id: 0, start: 0, end: 1, text: ' Hello from the tiny whisper model.', avg_logprob: -0.01, no_speech_prob: 0.02 }],
      engine: 'whisper-cpp',
    },
  });

const textResponses = {
  content: { 'application/json': { schema: z.unknown() }, 'text/plain': { schema: z.string() } },
};

function granularities(body: { 'timestamp_granularities[]'?: string | string[]; timestamp_granularities?: string | string[] }): Set<string> {
  const values = [body['timestamp_granularities[]'], body.timestamp_granularities].flat().filter((v): v is string => typeof v === 'string');
  return new Set(values);
}

export const speechToTextRoutes: FastifyPluginAsyncZod<SpeechToTextOptions> = async (app, options) => {
  await registerMultipart(app, options.maxUploadBytes);
  const { transcription } = options;

  type Log = { info: (o: object, m: string) => void };
  type Fields = { language?: string; prompt?: string; temperature?: number; vad_filter?: boolean; model?: string; keep_alive?: number };

  /** Everything that can fail with a clean 4xx/503 before any byte is sent. */
  /** `reply`: its decoded audio is held against MAX_AUDIO_IN_FLIGHT_SECONDS until the response closes. */
  async function prepare(file: Buffer, signal: AbortSignal, reply: FastifyReply, log: Log, model: string | undefined): Promise<DecodedAudio> {
    transcription.assertAvailable(model);
    const audio = await decodeToWhisperInput(file, { maxSeconds: options.maxAudioSeconds, signal, budget: options.audioBudget.forResponse(reply.raw) });
    log.info({ container: audio.source.container, bytes: audio.source.bytes, duration_s: +audio.duration.toFixed(3), sample_rate: audio.source.sampleRate, channels: audio.source.channels }, 'audio received');
    return audio;
  }

  async function transcribe(
    audio: DecodedAudio,
    fields: Fields,
    task: 'transcribe' | 'translate',
    words: boolean,
    signal: AbortSignal,
    log: Log,
    onSegment?: (segment: TranscriptSegment) => void,
  ) {
    const started = performance.now();
    const result = await transcription.transcribe(
      { audio: audio.samples, language: fields.language?.toLowerCase(), prompt: fields.prompt, temperature: fields.temperature, task, wordTimestamps: words, vadFilter: fields.vad_filter },
      signal,
      onSegment,
      fields.model,
      fields.keep_alive,
    );
    log.info({ stage: 'stt', engine: result.engine, model: result.model, stt_ms: Math.round(performance.now() - started) }, 'transcribed');
    // the duration of what was sent, not of the resampled buffer (which may be a sample short)
    return { ...result, transcript: { ...result.transcript, duration: audio.duration } };
  }

  async function run(file: Buffer, fields: Fields, task: 'transcribe' | 'translate', words: boolean, signal: AbortSignal, reply: FastifyReply, log: Log) {
    return transcribe(await prepare(file, signal, reply, log, fields.model), fields, task, words, signal, log);
  }

  function formatted(format: ResponseFormat, transcript: Transcript, task: 'transcribe' | 'translate', temperature: number) {
    if (format === 'text') return { type: 'text/plain; charset=utf-8', body: `${transcript.text}\n` };
    if (format === 'srt') return { type: 'text/plain; charset=utf-8', body: toSrt(transcript) };
    if (format === 'vtt') return { type: 'text/vtt; charset=utf-8', body: toVtt(transcript) };
    if (format === 'verbose_json') return { type: 'application/json; charset=utf-8', body: JSON.stringify(toVerboseJson(transcript, task, temperature)) };
    return undefined;
  }

  /**
   * stream=true: Server-Sent Events as the OpenAI API sends them — `transcript.text.delta` per
   * decoded segment, then `transcript.text.done` with the whole text. Errors before the first
   * byte (bad audio, no engine) are ordinary HTTP errors.
   */
  async function streamTranscript(request: FastifyRequest, reply: FastifyReply, body: Fields & { file: Buffer }, task: 'transcribe' | 'translate', signal: AbortSignal) {
    const audio = await prepare(body.file, signal, reply, request.log, body.model);
    const queue = new AsyncQueue<SseEvent>();
    const done = transcribe(audio, body, task, false, signal, request.log, (segment) => queue.push({ data: { type: 'transcript.text.delta', delta: segment.text } }))
      .then((result) => queue.push({ data: { type: 'transcript.text.done', text: result.transcript.text } }))
      .finally(() => queue.end());
    done.catch(() => undefined);
    return sendSse(
      request,
      reply,
      (async function* () {
        yield* queue;
        await done; // surfaces an engine failure as the final error event
      })(),
    );
  }

  for (const task of ['transcribe', 'translate'] as const) {
    app.post(
      task === 'transcribe' ? '/v1/audio/transcriptions' : '/v1/audio/translations',
      {
        schema: {
          tags: ['speech-to-text'],
          summary: task === 'transcribe' ? 'Transcribe audio (OpenAI-compatible)' : 'Translate audio to English (OpenAI-compatible)',
          description: `The OpenAI ${task === 'transcribe' ? 'transcription' : 'translation'} API: multipart/form-data with \`file\` (up to MAX_UPLOAD_BYTES, decoded audio up to MAX_AUDIO_SECONDS), \`model\` (an id or alias of GET /v1/models; \`whisper-1\` and \`gpt-4o-mini-transcribe\` pick the default), \`language\`, \`prompt\`, \`response_format\` (json | text | srt | verbose_json | vtt), \`temperature\`, \`timestamp_granularities[]\` (word | segment; word fills \`words\` in verbose_json). The official SDKs work unchanged. 413 too large or too long, 415 unrecognized audio, 400 undecodable audio, 429 queue full, 503 while the Whisper model is missing (with the remedy). \`X-STT-Engine\` names the engine that answered (not on \`stream=true\`).${task === 'translate' ? ' Needs a multilingual model.' : ''}`,
          consumes: ['multipart/form-data'],
          body: openAiTranscriptionForm,
          response: { 200: { description: 'json: {"text"}; verbose_json: OpenAI\'s verbose shape; text/srt/vtt as text.', ...textResponses }, ...errorResponses(400, 413, 415, 429, 503) },
        },
      },
      async (request, reply) => {
        const body = request.body;
        const format = body.response_format ?? 'json';
        const words = granularities(body).has('word');
        const signal = clientSignal(reply);
        if (body.stream) return streamTranscript(request, reply, body, task, signal);
        const { transcript, engine, model } = await run(body.file, body, task, words, signal, reply, request.log);
        void reply.header('X-STT-Engine', engine); // as /v1/speech-to-text (a stream starts before the engine is known)
        void reply.header('X-STT-Model', model);
        const out = formatted(format, transcript, task, body.temperature ?? 0);
        if (out) return reply.type(out.type).send(out.body);
        return reply.type('application/json; charset=utf-8').send(JSON.stringify({ text: transcript.text }));
      },
    );
  }

  app.post(
    '/v1/speech-to-text',
    {
      schema: {
        tags: ['speech-to-text'],
        summary: 'Transcribe audio (speech-to-text)',
        description:
          'multipart/form-data with `file` (or JSON with `audio_base64`) and optional `language`, `prompt`, `temperature`, `response_format` (default `json`: the shape below with segments, timestamps, confidences and the engine that answered; text/srt/vtt/verbose_json as in the OpenAI API). Same limits and errors as /v1/audio/transcriptions.',
        consumes: ['multipart/form-data', 'application/json'],
        body: z.union([speechToTextForm, speechToTextJson]),
        response: { 200: speechToTextResponse, ...errorResponses(400, 413, 415, 429, 503) },
      },
      // a route option, not a schema field (Fastify ignores it there): base64 audio up to MAX_UPLOAD_BYTES
      bodyLimit: base64BodyLimit(options.maxUploadBytes),
    },
    async (request, reply) => {
      const body = request.body;
      const format = body.response_format ?? 'json';
      const file = 'file' in body ? body.file : Buffer.from(body.audio_base64, 'base64');
      assertAudioSize(file, options.maxUploadBytes);
      // word timestamps in the plain json shape too (the playground's word view), when asked for
      const words = format === 'verbose_json' || granularities(body).has('word');
      const { transcript, engine, model } = await run(file, body, 'transcribe', words, clientSignal(reply), reply, request.log);
      void reply.header('X-STT-Engine', engine);
      void reply.header('X-STT-Model', model);
      const out = formatted(format, transcript, 'transcribe', body.temperature ?? 0);
      if (out) return reply.type(out.type).send(out.body as never); // text formats bypass the JSON serializer
      return {
        text: transcript.text,
        language: transcript.language,
        duration: transcript.duration,
        segments: transcript.segments.map((s) => segmentView(s)),
        ...(transcript.words ? { words: transcript.words } : {}),
        engine,
        model,
      };
    },
  );
};
