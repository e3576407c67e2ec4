/**
 * Text-to-speech over HTTP: the native POST /v1/text-to-speech (JSON in; JSON with base64 audio
 * out, or with `"stream": true` the audio itself, chunked, first bytes once the first chunk is
 * synthesized) and OpenAI's POST /v1/audio/speech (voices: ./voices.ts).
 */
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { AUDIO_FORMATS, type AudioFormat } from '../audio/formats.ts';
import type { Speech, SynthesisService } from '../services/synthesis.ts';
import { abortedByClient, clientSignal, logClientAbort } from './request-signal.ts';
import { base64BodyLimit, errorResponses, nonEmptyBase64Schema, speedSchema } from './schemas.ts';
import { sendSse } from './streaming.ts';

/**
 * Audio "tokens" for the speech SSE usage: the OpenAudio (fish-speech) codec's frame rate (44.1 kHz
 * / 2048 samples per frame ≈ 21.5 frames a second), applied to the audio's duration whatever
 * engine spoke, so clients that bill or budget by usage see a count that grows with the audio.
 */
const AUDIO_TOKENS_PER_SECOND = 21.5;

const referenceSchema = z.object({
  audio: nonEmptyBase64Schema.describe('Reference clip (wav, mp3, flac, ogg, ...), base64. Checked for size (MAX_REFERENCE_AUDIO_BYTES), format and duration (MAX_REFERENCE_AUDIO_SECONDS) before any upstream call.'),
  text: z.string().min(1).describe('What is said in the clip.'),
});

export const textToSpeechRequestSchema = z
  .object({
    text: z.string().describe('What to say (at most MAX_TTS_TEXT_CHARS characters).'),
    model: z.string().max(200).optional().describe('The voice model: an id or alias of GET /v1/models when the models file names voice models (unknown: 404 `model_not_found`); without them TTS_BACKEND\'s chain answers.'),
    format: z.enum(AUDIO_FORMATS).optional().describe('Audio format (default OPENAUDIO_DEFAULT_FORMAT). mp3, opus (Ogg), flac and aac are encoded with ffmpeg.'),
    voice: z.string().max(200).optional().describe('Embedded voice (`en-us`, `de`, `en-us+f3`, or an OpenAI name such as `alloy`) or a fish-speech reference id.'),
    reference_id: z.string().max(255).optional().describe('fish-speech reference voice id (default OPENAUDIO_DEFAULT_REFERENCE_ID).'),
    references: z.array(referenceSchema).max(8).optional().describe('In-context reference clips for voice cloning (fish-speech).'),
    normalize: z.boolean().optional().describe('Text normalization for numbers (fish-speech; default OPENAUDIO_DEFAULT_NORMALIZE).'),
    sample_rate: z.number().int().min(8000).max(192_000).optional().describe('Output sample rate in Hz (default DEFAULT_AUDIO_SAMPLE_RATE; opus is always 48000).'),
    speed: speedSchema.optional().default(1),
    stream: z.boolean().optional().default(false).describe('Answer with the audio bytes themselves, chunked as they are synthesized, instead of JSON.'),
    seed: z.number().int().optional().describe('fish-speech sampling seed.'),
    temperature: z.number().min(0.1).max(1).optional().describe('fish-speech sampling temperature.'),
    top_p: z.number().min(0.1).max(1).optional().describe('fish-speech nucleus sampling.'),
    repetition_penalty: z.number().min(0.9).max(2).optional().describe('fish-speech repetition penalty.'),
    max_new_tokens: z.number().int().min(1).max(8192).optional().describe('fish-speech token budget per text chunk.'),
    chunk_length: z.number().int().min(100).max(300).optional().describe('fish-speech text chunk length (100–300).'),
    use_memory_cache: z.enum(['on', 'off']).optional().describe('fish-speech: cache the encoded references.'),
  })
  .meta({ id: 'TextToSpeechRequest', example: { text: 'Hello from gemma-3-api.', format: 'wav', voice: 'en-us', speed: 1 } });

export const textToSpeechResponseSchema = z
  .object({
    audio_base64: z.string().describe('The audio file, base64.'),
    format: z.enum(AUDIO_FORMATS),
    sample_rate: z.number().int(),
    duration_seconds: z.number(),
    engine: z.string().describe('The engine that spoke (`openaudio` or `espeak`).'),
    truncated: z.boolean().describe('True when MAX_TTS_AUDIO_SECONDS cut the speech short.'),
  })
  .meta({ id: 'TextToSpeechResponse' });

export const speechRequestSchema = z
  .object({
    model: z.string().max(200).optional().describe('The voice model: an id or alias of GET /v1/models when the models file names voice models (`tts-1`, `tts-1-hd`, `gpt-4o-mini-tts` pick the default; another name is 404 `model_not_found`); without them any name is TTS_BACKEND\'s chain.'),
    input: z.string().describe('The text to speak (at most MAX_TTS_TEXT_CHARS characters, 4096 by default as at OpenAI).'),
    voice: z.union([z.string().max(200), z.object({ id: z.string().max(200) })]).describe('An OpenAI voice name (alloy, ash, ballad, coral, echo, fable, nova, onyx, sage, shimmer, verse), an embedded voice, or a fish-speech reference id.'),
    instructions: z.string().max(4096).optional().describe('Accepted for compatibility; not used by these engines.'),
    response_format: z.enum(AUDIO_FORMATS).optional().default('mp3'),
    speed: speedSchema.optional().default(1),
    stream_format: z.enum(['audio', 'sse']).optional().default('audio').describe('`audio`: the audio bytes, chunked; `sse`: `speech.audio.delta` events with base64 audio, then `speech.audio.done`.'),
  })
  .meta({ id: 'CreateSpeechRequest', example: { model: 'tts-1', input: 'The quick brown fox jumped over the lazy dog.', voice: 'alloy', response_format: 'mp3' } });

const audioResponse = (description: string) => ({
  description,
  content: Object.fromEntries(['audio/wav', 'audio/pcm', 'audio/mpeg', 'audio/ogg', 'audio/flac', 'audio/aac'].map((t) => [t, { schema: { type: 'string', format: 'binary' } }])),
});

/** Sends the audio bytes as they come; an error after the first byte cuts the response short. */
function sendAudio(request: FastifyRequest, reply: FastifyReply, speech: Speech): FastifyReply {
  async function* body() {
    try {
      yield* speech.bytes;
    } catch (error) {
      if (abortedByClient(request, error)) return logClientAbort(request, error);
      request.log.error({ err: error }, 'audio stream failed after the first byte');
      throw error;
    }
  }
  return reply
    .header('Content-Type', speech.contentType)
    .header('X-TTS-Engine', speech.engine)
    .header('X-Sample-Rate', String(speech.sampleRate))
    .header('Cache-Control', 'no-cache')
    .send(Readable.from(body()));
}

export const textToSpeechRoutes: FastifyPluginAsyncZod<{ synthesis: SynthesisService; defaultFormat: AudioFormat; maxUploadBytes: number }> = async (app, { synthesis, defaultFormat, maxUploadBytes }) => {
  app.post(
    '/v1/text-to-speech',
    {
      schema: {
        tags: ['text-to-speech'],
        summary: 'Synthesize speech (text-to-speech)',
        description:
          'Speaks `text` with the first ready engine of TTS_BACKEND (fish-speech / OpenAudio-S1-mini, then the embedded eSpeak NG voice). JSON answer with `audio_base64`, or with `"stream": true` the audio itself (`Content-Type` of the format, chunked; `X-TTS-Engine` and `X-Sample-Rate` headers), first bytes once the first chunk is synthesized — `curl ... --output speech.wav` works. 400 empty or too-long text, bad reference audio, unknown voice; 413 reference clip too large/long; 429 `queue_full`; 501 `encoder_unavailable` when the format needs ffmpeg and it is missing; 502/504 `upstream_error` when fish-speech fails after retries and no other engine answers; 503 while no engine is ready.',
        body: textToSpeechRequestSchema,
        response: {
          200: textToSpeechResponseSchema.or(z.any().meta(audioResponse('The audio, when `stream` is true.'))),
          ...errorResponses(400, 404, 413, 415, 429, 501, 502, 503, 504),
        },
      },
      // reference clips travel base64 inside the JSON: allow an upload's worth (MAX_UPLOAD_BYTES).
      // A route option, not a schema field (Fastify ignores it there).
      bodyLimit: base64BodyLimit(maxUploadBytes),
    },
    async (request, reply) => {
      const body = request.body;
      const format = body.format ?? defaultFormat;
      const speech = await synthesis.start(
        {
          text: body.text,
          format,
          voice: body.voice,
          referenceId: body.reference_id,
          references: body.references?.map((r) => ({ audio: Buffer.from(r.audio, 'base64'), text: r.text })),
          normalize: body.normalize,
          sampleRate: body.sample_rate,
          speed: body.speed,
          seed: body.seed,
          temperature: body.temperature,
          topP: body.top_p,
          repetitionPenalty: body.repetition_penalty,
          maxNewTokens: body.max_new_tokens,
          chunkLength: body.chunk_length,
          useMemoryCache: body.use_memory_cache === undefined ? undefined : body.use_memory_cache === 'on',
        },
        clientSignal(reply),
        { text: 'text', references: 'references' },
        body.model,
      );
      if (body.stream) return sendAudio(request, reply, speech);
      const audio = await synthesis.collect(speech);
      void reply.header('X-TTS-Engine', speech.engine);
      return {
        audio_base64: audio.toString('base64'),
        format,
        sample_rate: speech.sampleRate,
        duration_seconds: Math.round(speech.durationSeconds() * 1000) / 1000,
        engine: speech.engine,
        truncated: speech.truncated(),
      };
    },
  );

  app.post(
    '/v1/audio/speech',
    {
      schema: {
        tags: ['text-to-speech'],
        summary: 'Create speech (OpenAI-compatible)',
        description:
          'OpenAI\'s speech endpoint: the official SDKs work unchanged. Returns the audio bytes (default mp3), chunked as synthesized; with `stream_format: "sse"`, Server-Sent Events `speech.audio.delta` (`{"type","audio"}` base64) then `speech.audio.done` (`{"type","usage"}`: `input_tokens` estimated at 4 characters per token, `output_tokens` the audio in OpenAudio codec frames, 21.5 per second, whatever engine spoke). Errors as for /v1/text-to-speech; `X-TTS-Engine` names the engine.',
        body: speechRequestSchema,
        response: {
          200: z.any().meta(audioResponse('The audio (or `text/event-stream` with `stream_format: "sse"`).')),
          ...errorResponses(400, 404, 429, 501, 502, 503, 504),
        },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const voice = typeof body.voice === 'string' ? body.voice : body.voice.id;
      const speech = await synthesis.start({ text: body.input, format: body.response_format, voice, speed: body.speed }, clientSignal(reply), { text: 'input' }, body.model);
      if (body.stream_format === 'audio') return sendAudio(request, reply, speech);
      void reply.header('X-TTS-Engine', speech.engine);
      const inputTokens = Math.ceil(body.input.length / 4);
      return sendSse(
        request,
        reply,
        (async function* () {
          for await (const chunk of speech.bytes) yield { event: 'speech.audio.delta', data: { type: 'speech.audio.delta', audio: chunk.toString('base64') } };
          const outputTokens = Math.ceil(speech.durationSeconds() * AUDIO_TOKENS_PER_SECOND);
          yield { event: 'speech.audio.done', data: { type: 'speech.audio.done', usage: { input_tokens: inputTokens, output_tokens: outputTokens, total_tokens: inputTokens + outputTokens } } };
        })(),
      );
    },
  );
};
