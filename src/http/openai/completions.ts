/** OpenAI-compatible POST /v1/completions (legacy text completion: the prompt goes in as is). */
import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { GenerationService } from '../../services/generation.ts';
import { openAiUsage, samplingFields, toParams } from '../generation-params.ts';
import { clientSignal } from '../request-signal.ts';
import { sendSse } from '../streaming.ts';
import { errorResponses, keepAliveSchema, llmModelSchema } from '../schemas.ts';

export const completionRequestSchema = z
  .object({
    model: llmModelSchema,
    keep_alive: keepAliveSchema,
    prompt: z.union([z.string(), z.array(z.string()).length(1)]).describe('One prompt (a string, or an array of exactly one string).'),
    max_tokens: z.number().int().min(1).nullable().optional().default(16).describe('Default 16, as in the OpenAI API.'),
    n: z.literal(1).nullable().optional(),
    echo: z.literal(false).nullable().optional(),
    stream_options: z.object({ include_usage: z.boolean().optional() }).nullable().optional(),
    ...samplingFields,
  })
  .meta({ id: 'CompletionRequest', example: { model: 'gemma-3-1b-it', prompt: 'The three primary colors are', max_tokens: 16 } });

export const completionResponseSchema = z
  .object({
    id: z.string(),
    object: z.literal('text_completion'),
    created: z.number().int(),
    model: z.string(),
    choices: z.array(z.object({ text: z.string(), index: z.number().int(), logprobs: z.null(), finish_reason: z.enum(['stop', 'length']) })),
    usage: z.object({ prompt_tokens: z.number().int(), completion_tokens: z.number().int(), total_tokens: z.number().int() }),
  })
  .meta({
    id: 'Completion',
    example: {
      id: 'cmpl-1a2b',
      object: 'text_completion',
      created: 1764150000,
      model: 'gemma-3-1b-it-Q4_K_M',
      choices: [{ text: ' red, yellow and blue.', index: 0, logprobs: null, finish_reason: 'stop' }],
      usage: { prompt_tokens: 6, completion_tokens: 7, total_tokens: 13 },
    },
  });

export const completionRoutes: FastifyPluginAsyncZod<{ generation: GenerationService }> = async (app, { generation }) => {
  app.post(
    '/v1/completions',
    {
      schema: {
        tags: ['openai'],
        summary: 'Text completions (OpenAI-compatible)',
        description: 'The legacy OpenAI Completions API: the prompt is continued as is, without a chat template. `stream: true` sends `text_completion` chunks and `data: [DONE]`. Only `n: 1`.',
        body: completionRequestSchema,
        response: { 200: completionResponseSchema, ...errorResponses(400, 429, 503) },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const prompt = Array.isArray(body.prompt) ? body.prompt[0]! : body.prompt;
      const params = toParams({ ...body, maxTokens: body.max_tokens ?? 16 });
      const run = await generation.start({ kind: 'prompt', prompt }, params, clientSignal(reply), body.stream ? 'stream' : 'generate', body.model, body.keep_alive);
      const id = `cmpl-${randomUUID()}`;
      const created = Math.floor(Date.now() / 1000);
      const chunk = (text: string, finish: 'stop' | 'length' | null) => ({ id, object: 'text_completion' as const, created, model: run.model, choices: [{ text, index: 0, logprobs: null, finish_reason: finish }] });
      if (body.stream) {
        const includeUsage = body.stream_options?.include_usage === true;
        return sendSse(
          request,
          reply,
          (async function* () {
            for await (const event of run.events) {
              if (event.type === 'delta') yield { data: chunk(event.text, null) };
              else {
                yield { data: chunk('', event.result.finishReason) };
                const u = event.result.usage;
                if (includeUsage) yield { data: { id, object: 'text_completion', created, model: run.model, choices: [], usage: openAiUsage(u) } };
              }
            }
            yield { data: '[DONE]' };
          })(),
        );
      }
      const result = await generation.result(run);
      return { ...chunk(result.text, result.finishReason), choices: [{ text: result.text, index: 0, logprobs: null, finish_reason: result.finishReason }], usage: openAiUsage(result.usage) };
    },
  );
};
