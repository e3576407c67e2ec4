/**
 * Voices: GET /v1/audio/voices lists every ready engine's voices; POST /v1/audio/voices stores a
 * cloned voice (a reference clip and its transcript) with fish-speech, after which its id works as
 * `voice` (or `reference_id`) on every speech route; DELETE /v1/audio/voices/{id} removes it.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { SynthesisService } from '../services/synthesis.ts';
import { audioFileField, registerMultipart } from './multipart-audio.ts';
import { clientSignal } from './request-signal.ts';
import { errorResponses } from './schemas.ts';

const voicesResponseSchema = z
  .object({ voices: z.array(z.object({ id: z.string(), name: z.string(), engine: z.string() })) })
  .meta({ id: 'VoiceList' });

/** fish-speech's own rule for reference ids (letters, digits, `-`, `_`, spaces; at most 255). */
const voiceId = z
  .string()
  .trim()
  .regex(/^[A-Za-z0-9_\- ]{1,255}$/, 'must be 1-255 letters, digits, "-", "_" or spaces')
  .describe('The voice id: what `voice` (or `reference_id`) names afterwards.');

const addVoiceForm = z
  .object({
    id: voiceId,
    text: z.string().min(1).max(10_000).describe('The transcript of the clip, word for word.'),
    file: audioFileField.describe('The reference clip: a few seconds of one speaker (at most MAX_REFERENCE_AUDIO_BYTES / MAX_REFERENCE_AUDIO_SECONDS).'),
  })
  .meta({ id: 'AddVoiceForm' });

const voiceSchema = z.object({ object: z.literal('voice'), id: z.string(), engine: z.string() }).meta({ id: 'Voice' });
const deletedSchema = z.object({ object: z.literal('voice'), id: z.string(), engine: z.string(), deleted: z.literal(true) }).meta({ id: 'DeletedVoice' });

export const voiceRoutes: FastifyPluginAsyncZod<{ synthesis: SynthesisService; maxUploadBytes: number }> = async (app, { synthesis, maxUploadBytes }) => {
  await registerMultipart(app, maxUploadBytes);

  app.get(
    '/v1/audio/voices',
    {
      schema: {
        tags: ['text-to-speech'],
        summary: 'List voices',
        description: 'Voices of every ready TTS engine: fish-speech reference ids (the cloned voices), the OpenAI voice names (mapped onto the embedded voice) and the embedded eSpeak NG languages.',
        response: { 200: voicesResponseSchema, ...errorResponses(503) },
      },
    },
    async () => ({ voices: await synthesis.voices() }),
  );

  app.post(
    '/v1/audio/voices',
    {
      schema: {
        tags: ['text-to-speech'],
        summary: 'Add a cloned voice',
        description:
          'Stores a reference clip and its transcript on the fish-speech server (its `/v1/references/add`) under `id`; afterwards `voice: "<id>"` speaks with that voice on every speech route and socket. The clip is decoded and checked here first (400 undecodable, 413 over MAX_REFERENCE_AUDIO_BYTES or MAX_REFERENCE_AUDIO_SECONDS). 409 `voice_exists` when the id is taken, 501 `voice_cloning_unavailable` without fish-speech in TTS_BACKEND, 503 while it is down.',
        consumes: ['multipart/form-data'],
        body: addVoiceForm,
        response: { 201: voiceSchema, ...errorResponses(400, 409, 413, 415, 501, 502, 503) },
      },
    },
    async (request, reply) => {
      const { id, text, file } = request.body;
      const engine = await synthesis.addVoice({ id, text, audio: file }, clientSignal(reply));
      return reply.code(201).send({ object: 'voice' as const, id, engine });
    },
  );

  app.delete(
    '/v1/audio/voices/:id',
    {
      schema: {
        tags: ['text-to-speech'],
        summary: 'Delete a cloned voice',
        description: 'Removes a voice stored with POST /v1/audio/voices (fish-speech `/v1/references/delete`). 404 `voice_not_found` when there is none.',
        params: z.object({ id: voiceId }),
        response: { 200: deletedSchema, ...errorResponses(400, 404, 501, 502, 503) },
      },
    },
    async (request, reply) => {
      const engine = await synthesis.deleteVoice(request.params.id, clientSignal(reply));
      return { object: 'voice' as const, id: request.params.id, engine, deleted: true as const };
    },
  );
};
