/** The native generation route: POST /v1/generate. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { GenerationService } from '../services/generation.ts';
import { responseFormatSchema, samplingFields, toParams } from './generation-params.ts';
import { clientSignal } from './request-signal.ts';
import { sendSse } from './streaming.ts';
import { errorResponses, keepAliveSchema, llmModelSchema } from './schemas.ts';

export const generateRequestSchema = z
  .object({
    model: llmModelSchema,
    keep_alive: keepAliveSchema,
    prompt: z.string().min(1).describe('What to answer. Rendered as one user turn through the model\'s chat template unless `raw` is true.'),
    system: z.string().optional().describe('Optional system instruction.'),
    raw: z.boolean().optional().default(false).describe('Send the prompt to the model as is (plain completion, no chat template).'),
    max_tokens: z.number().int().min(1).optional().default(256).describe('Most tokens to generate (capped by LLM_MAX_TOKENS).'),
    top_k: z.number().int().min(0).optional().describe('Sample from the k most likely tokens (0 = off).'),
    response_format: responseFormatSchema,
    ...samplingFields,
  })
  .meta({ id: 'GenerateRequest', example: { prompt: 'Write a haiku about GPUs.', max_tokens: 64, temperature: 0.7 } });

const usageSchema = z.object({ prompt_tokens: z.number().int(), completion_tokens: z.number().int() });

export const generateResponseSchema = z
  .object({
    generated_text: z.string(),
    finish_reason: z.enum(['stop', 'length']).describe('`stop`: the model ended or a stop sequence matched; `length`: max_tokens reached.'),
    usage: usageSchema,
    model: z.string(),
  })
  .meta({
    id: 'GenerateResponse',
    example: { generated_text: 'Silicon rivers hum...', finish_reason: 'stop', usage: { prompt_tokens: 14, completion_tokens: 17 }, model: 'gemma-3-1b-it-Q4_K_M' },
  });

export const generateRoutes: FastifyPluginAsyncZod<{ generation: GenerationService }> = async (app, { generation }) => {
  app.post(
    '/v1/generate',
    {
      schema: {
        tags: ['generation'],
        summary: 'Generate text with Gemma 3',
        description:
          'Generates a reply to `prompt`. With `"stream": true` the answer is `text/event-stream`: `event: delta` with `{"text": "..."}` per chunk, then `event: done` with `{"generated_text","finish_reason","usage","model"}`; an error after streaming began arrives as `event: error` with the error envelope. 429 `queue_full` with `Retry-After` when LLM_PARALLEL generations run and LLM_QUEUE_SIZE wait; 400 `context_length_exceeded` when the prompt does not fit the context window; 503 while the model is loading or missing (the message says how to provide it). A client that disconnects stops its generation.',
        body: generateRequestSchema,
        response: { 200: generateResponseSchema, ...errorResponses(400, 429, 503) },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const input = body.raw
        ? { kind: 'prompt' as const, prompt: body.prompt }
        : { kind: 'chat' as const, messages: [...(body.system ? [{ role: 'system' as const, content: body.system }] : []), { role: 'user' as const, content: body.prompt }] };
      const params = toParams({ ...body, maxTokens: body.max_tokens });
      const signal = clientSignal(reply);
      const run = await generation.start(input, params, signal, body.stream ? 'stream' : 'generate', body.model, body.keep_alive);
      if (body.stream) {
        return sendSse(
          request,
          reply,
          (async function* () {
            for await (const event of run.events) {
              if (event.type === 'delta') yield { event: 'delta', data: { text: event.text } };
              else yield { event: 'done', data: shape({ ...event.result, model: run.model }) };
            }
          })(),
        );
      }
      return shape({ ...(await generation.result(run)), model: run.model });
    },
  );
};

function shape(result: { text: string; finishReason: 'stop' | 'length'; usage: { promptTokens: number; completionTokens: number }; model: string }) {
  return {
    generated_text: result.text,
    finish_reason: result.finishReason,
    usage: { prompt_tokens: result.usage.promptTokens, completion_tokens: result.usage.completionTokens },
    model: result.model,
  };
}
