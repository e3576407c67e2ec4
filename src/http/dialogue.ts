/**
 * Voice dialogue over HTTP: POST /v1/dialogue (JSON with `text` or `audio_base64`, or multipart with
 * `file`), answered as JSON or, with `stream: true`, as Server-Sent Events; and the session routes
 * GET/DELETE /v1/sessions/{id}. The pipeline itself is DialogueService (src/dialogue/pipeline.ts).
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { AudioBudget } from '../audio/audio-budget.ts';
import { decodeToWhisperInput } from '../audio/decode.ts';
import { AUDIO_FORMATS } from '../audio/formats.ts';
import type { DialogueService } from '../dialogue/pipeline.ts';
import { ApiError } from '../errors.ts';
import { tenantOf } from '../tenancy.ts';
import { resultView, transcriptView } from './dialogue-view.ts';
import { audioFileField, formBoolean, formNumber, registerMultipart } from './multipart-audio.ts';
import { clientSignal } from './request-signal.ts';
import { assertAudioSize, base64BodyLimit, base64Schema, errorResponses, languageSchema, llmModelSchema, sttModelSchema, transcriptSegmentSchema } from './schemas.ts';
import { sendSse } from './streaming.ts';

const modalities = z.array(z.enum(['text', 'audio'])).min(1);

const common = {
  session_id: z.string().max(128).optional().describe('Continue this conversation; a new id is generated (and returned) when absent. With API keys on, ids are per key: another key\'s session of the same id is another conversation.'),
  voice: z.string().max(200).optional().describe('Voice of the spoken reply (see GET /v1/audio/voices).'),
  format: z.enum(AUDIO_FORMATS).optional().describe('Audio format of the spoken reply (default wav).'),
  language: languageSchema.optional().describe('Spoken language of the audio (detected when absent).'),
  model: llmModelSchema,
  stt_model: sttModelSchema,
};

export const dialogueJsonSchema = z
  .object({
    text: z.string().max(100_000).optional().describe('The user turn as text.'),
    audio_base64: base64Schema
      .optional()
      .describe('The user turn as audio (any format /v1/speech-to-text takes), base64.'),
    ...common,
    sample_rate: z.number().int().min(8000).max(192_000).optional(),
    response_modalities: modalities.optional().describe('What the reply contains: ["text"], ["audio"] or both (default both).'),
    stream: z.boolean().optional().default(false).describe('Server-Sent Events: `transcript`, then `text.delta` and `audio.delta` as produced, then `done`.'),
    max_tokens: z.number().int().min(1).optional(),
    temperature: z.number().min(0).max(2).optional(),
  })
  .meta({ id: 'DialogueRequest', example: { text: 'What is the capital of France?', session_id: 'demo-1', response_modalities: ['text', 'audio'], format: 'wav' } });

export const dialogueFormSchema = z
  .object({
    file: audioFileField,
    ...common,
    sample_rate: formNumber.pipe(z.number().int().min(8000).max(192_000)).optional(),
    response_modalities: z.union([z.enum(['text', 'audio']), z.string().regex(/^(text|audio)(,(text|audio))*$/)]).optional().describe('Comma-separated: text,audio.'),
    stream: formBoolean.optional(),
    max_tokens: formNumber.pipe(z.number().int().min(1)).optional(),
    temperature: formNumber.pipe(z.number().min(0).max(2)).optional(),
  })
  .meta({ id: 'DialogueForm' });

/**
 * The body schema by content type: one union of both would let the JSON branch (every field
 * optional) match a form first and silently drop its `file`.
 */
const BODY_BY_TYPE = { 'application/json': dialogueJsonSchema, 'multipart/form-data': dialogueFormSchema } as const;
type DialogueBody = z.output<typeof dialogueJsonSchema> | z.output<typeof dialogueFormSchema>;

const transcriptSchema = z.object({
  text: z.string(),
  language: z.string(),
  duration: z.number(),
  segments: z.array(transcriptSegmentSchema),
});

const timingsSchema = z.object({
  stt_ms: z.number().nullable(),
  llm_first_token_ms: z.number().nullable(),
  llm_total_ms: z.number().nullable(),
  llm_first_sentence_ms: z.number().nullable().describe('From the LLM call to its first complete sentence (what speech waits for).'),
  tts_first_audio_ms: z.number().nullable().describe('From the first sentence reaching TTS to its first audio.'),
  tts_total_ms: z.number().nullable(),
  first_audio_ms: z.number().nullable().describe('From the request arriving to the first reply audio.'),
  total_ms: z.number(),
});

export const dialogueResponseSchema = z
  .object({
    session_id: z.string(),
    transcript: transcriptSchema.nullable().describe('What was heard (audio turns), with segment timestamps and confidences.'),
    reply_text: z.string(),
    audio_base64: z.string().nullable().describe('The spoken reply; null when not asked for or when TTS failed (see `degraded`).'),
    audio_format: z.enum(AUDIO_FORMATS).nullable(),
    sample_rate: z.number().int().nullable(),
    duration_seconds: z.number().nullable(),
    no_speech: z.boolean().describe('The audio held no speech: the model was not asked.'),
    degraded: z.array(z.object({ stage: z.enum(['tts', 'session']), reason: z.string() })).describe('Stages that failed without failing the turn.'),
    engines: z.object({ stt: z.string().nullable(), llm: z.string(), tts: z.string().nullable() }),
    usage: z.object({ prompt_tokens: z.number().int(), completion_tokens: z.number().int() }),
    timings: timingsSchema,
  })
  .meta({ id: 'DialogueResponse' });

const sessionSchema = z
  .object({
    session_id: z.string(),
    turns: z.array(z.object({ role: z.enum(['user', 'assistant']), content: z.string(), at: z.string(), interrupted: z.boolean().optional() })),
  })
  .meta({ id: 'Session' });

export const dialogueRoutes: FastifyPluginAsyncZod<{ dialogue: DialogueService; maxUploadBytes: number; maxAudioSeconds: number; audioBudget: AudioBudget }> = async (app, { dialogue, maxUploadBytes, maxAudioSeconds, audioBudget }) => {
  await registerMultipart(app, maxUploadBytes);

  app.post(
    '/v1/dialogue',
    {
      schema: {
        tags: ['dialogue'],
        summary: 'One voice dialogue turn (STT → Gemma → TTS)',
        description:
          'The user turn as `text`, `audio_base64` (JSON) or `file` (multipart); the reply as text and/or speech with the conversation remembered under `session_id` (returned, and in `X-Session-ID`). Speech is synthesized sentence by sentence while the model writes. With `stream: true`, Server-Sent Events: `transcript` (audio turns), then `text.delta` `{"text"}` and `audio.delta` `{"audio","format","sample_rate"}` (base64 chunks of one continuous stream) interleaved as produced, then `done` with the metadata (as the JSON answer, without `audio_base64`); an error after the first byte is an `error` event. If TTS fails the turn still answers with text (`audio_base64: null`, `degraded: [{"stage":"tts",...}]`); audio with no speech answers `no_speech: true` without asking the model. 400 bad input, 413/415 audio, 429 queue full, 503 engine or session store unavailable.',
        body: { content: Object.fromEntries(Object.entries(BODY_BY_TYPE).map(([type, schema]) => [type, { schema }])) },
        response: { 200: dialogueResponseSchema, ...errorResponses(400, 413, 415, 429, 503) },
      },
      // a route option, not a schema field (Fastify ignores it there): base64 audio up to MAX_UPLOAD_BYTES
      bodyLimit: base64BodyLimit(maxUploadBytes),
      // a body of another type would reach the handler unvalidated (Fastify validates by content type)
      preValidation: (request, _reply, done) => {
        done(request.mediaType !== undefined && request.mediaType in BODY_BY_TYPE ? undefined : new ApiError(415, 'invalid_request_error', 'Send the turn as application/json or multipart/form-data.', { code: 'unsupported_media_type' }));
      },
    },
    async (request, reply) => {
      const receivedAt = performance.now();
      const body = request.body as DialogueBody;
      const file = 'file' in body ? body.file : body.audio_base64 !== undefined ? Buffer.from(body.audio_base64, 'base64') : undefined;
      if (file) assertAudioSize(file, maxUploadBytes);
      const audio = file ? await decodeToWhisperInput(file, { maxSeconds: maxAudioSeconds, budget: audioBudget.forResponse(reply.raw) }, 'file' in body ? 'file' : 'audio_base64') : undefined;
      const wanted = 'file' in body ? (body.response_modalities?.split(',') ?? ['text', 'audio']) : (body.response_modalities ?? ['text', 'audio']);
      const signal = clientSignal(reply);
      const turn = await dialogue.start(
        {
          sessionId: body.session_id,
          owner: tenantOf(request),
          text: 'text' in body ? body.text : undefined,
          audio,
          language: body.language?.toLowerCase(),
          modalities: { text: wanted.includes('text'), audio: wanted.includes('audio') },
          voice: body.voice,
          format: body.format ?? 'wav',
          sampleRate: body.sample_rate,
          maxTokens: body.max_tokens,
          temperature: body.temperature,
          model: body.model,
          sttModel: body.stt_model,
          receivedAt,
        },
        signal,
      );
      void reply.header('X-Session-ID', turn.sessionId);
      if (body.stream) {
        return sendSse(
          request,
          reply,
          (async function* () {
            for await (const event of turn.events) {
              if (event.type === 'transcript') yield { event: 'transcript', data: transcriptView(event.transcript) };
              else if (event.type === 'text.delta') yield { event: 'text.delta', data: { text: event.text } };
              else if (event.type === 'audio.delta') yield { event: 'audio.delta', data: { audio: event.audio.toString('base64'), format: event.format, sample_rate: event.sample_rate } };
              else yield { event: 'done', data: resultView(event.result, false) };
            }
          })(),
        );
      }
      for await (const event of turn.events) if (event.type === 'done') return resultView(event.result, true);
      throw new Error('the dialogue turn ended without a result');
    },
  );

  app.get(
    '/v1/sessions/:id',
    {
      schema: {
        tags: ['dialogue'],
        summary: 'A conversation\'s history',
        description: 'The stored turns of a session, oldest first (user and assistant; an assistant turn cut short by barge-in or a disconnect is marked `interrupted` and holds what was delivered). 404 when the session never existed, was deleted, expired (SESSION_TTL_SECONDS after its last turn), or — with API keys on — belongs to another key; 503 when the session store (Redis) is unreachable.',
        params: z.object({ id: z.string() }),
        response: { 200: sessionSchema, ...errorResponses(400, 404, 503) },
      },
    },
    async (request) => ({ session_id: request.params.id, turns: await dialogue.history(tenantOf(request), request.params.id) }),
  );

  app.delete(
    '/v1/sessions/:id',
    {
      schema: {
        tags: ['dialogue'],
        summary: 'Forget a conversation',
        description: 'Deletes the session\'s history everywhere (every replica shares it through Redis). 204 when deleted, 404 when unknown (or another key\'s).',
        params: z.object({ id: z.string() }),
        response: { 204: z.null().describe('Deleted.'), ...errorResponses(400, 404, 503) },
      },
    },
    async (request, reply) => {
      await dialogue.forget(tenantOf(request), request.params.id);
      return reply.code(204).send(null);
    },
  );
};
