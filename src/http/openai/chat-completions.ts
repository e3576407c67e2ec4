/** OpenAI-compatible POST /v1/chat/completions (the official SDKs work against it unchanged). */
import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ChatMessage } from '../../engines/llm/types.ts';
import type { GenerationService } from '../../services/generation.ts';
import { chatMessage, contentText, openAiUsage, responseFormatSchema, samplingFields, toParams } from '../generation-params.ts';
import { clientSignal } from '../request-signal.ts';
import { sendSse } from '../streaming.ts';
import { errorResponses, keepAliveSchema, llmModelSchema } from '../schemas.ts';

const contentPart = z.object({ type: z.string(), text: z.string().optional() });
const messageSchema = z.object({
  role: z.enum(['system', 'developer', 'user', 'assistant']).describe('`developer` is treated as `system`. Tool messages are not supported.'),
  content: z.union([z.string(), z.array(contentPart)]).nullable().describe('Text, or an array of `{"type":"text","text":...}` parts.'),
  name: z.string().optional(),
});

export const chatRequestSchema = z
  .object({
    model: llmModelSchema,
    keep_alive: keepAliveSchema,
    messages: z.array(messageSchema).min(1),
    max_tokens: z.number().int().min(1).nullable().optional(),
    max_completion_tokens: z.number().int().min(1).nullable().optional().describe('Preferred over max_tokens; both capped by LLM_MAX_TOKENS.'),
    n: z.literal(1).nullable().optional().describe('Only 1 is supported.'),
    stream_options: z.object({ include_usage: z.boolean().optional() }).nullable().optional(),
    response_format: responseFormatSchema,
    tools: z.array(z.unknown()).max(0, 'tools are not supported by this server').optional(),
    logprobs: z
      .boolean()
      .nullable()
      .optional()
      .refine((v) => !v, 'logprobs are not supported by this server')
      .describe('Not supported: `true` is a 400 (rather than an answer without them).'),
    ...samplingFields,
  })
  .meta({
    id: 'ChatCompletionRequest',
    example: { model: 'gemma-3-1b-it', messages: [{ role: 'system', content: 'Answer briefly.' }, { role: 'user', content: 'What is the capital of France?' }], max_tokens: 64 },
  });

const usage = z.object({ prompt_tokens: z.number().int(), completion_tokens: z.number().int(), total_tokens: z.number().int() });

export const chatResponseSchema = z
  .object({
    id: z.string(),
    object: z.literal('chat.completion'),
    created: z.number().int(),
    model: z.string(),
    choices: z.array(
      z.object({
        index: z.number().int(),
        message: z.object({ role: z.literal('assistant'), content: z.string(), refusal: z.null() }),
        finish_reason: z.enum(['stop', 'length']),
        logprobs: z.null(),
      }),
    ),
    usage,
  })
  .meta({
    id: 'ChatCompletion',
    example: {
      id: 'chatcmpl-3f1c',
      object: 'chat.completion',
      created: 1764150000,
      model: 'gemma-3-1b-it-Q4_K_M',
      choices: [{ index: 0, message: { role: 'assistant', content: 'Paris.', refusal: null }, finish_reason: 'stop', logprobs: null }],
      usage: { prompt_tokens: 21, completion_tokens: 3, total_tokens: 24 },
    },
  });

export function toMessages(messages: z.infer<typeof messageSchema>[]): ChatMessage[] {
  return messages.map((m, i) => chatMessage(m.role, contentText(m.content, ['text'], `messages[${i}]`)));
}

export const chatCompletionRoutes: FastifyPluginAsyncZod<{ generation: GenerationService }> = async (app, { generation }) => {
  app.post(
    '/v1/chat/completions',
    {
      schema: {
        tags: ['openai'],
        summary: 'Chat completions (OpenAI-compatible)',
        description:
          'The OpenAI Chat Completions API over the loaded Gemma 3 model: system/developer, user and assistant messages are rendered through the model\'s chat template. `stream: true` sends `chat.completion.chunk` events and ends with `data: [DONE]` (with `stream_options.include_usage`, a last chunk carries `usage`). `response_format` `json_object`/`json_schema` is enforced with a llama.cpp grammar. Only `n: 1`; tools are not supported (400). Errors use the OpenAI error shape.',
        body: chatRequestSchema,
        response: { 200: chatResponseSchema, ...errorResponses(400, 429, 503) },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const params = toParams({ ...body, maxTokens: body.max_completion_tokens ?? body.max_tokens ?? Number.MAX_SAFE_INTEGER });
      const run = await generation.start({ kind: 'chat', messages: toMessages(body.messages) }, params, clientSignal(reply), body.stream ? 'stream' : 'generate', body.model, body.keep_alive);
      const id = `chatcmpl-${randomUUID()}`;
      const created = Math.floor(Date.now() / 1000);
      if (body.stream) {
        const includeUsage = body.stream_options?.include_usage === true;
        const chunk = (delta: Record<string, unknown>, finish: string | null) => ({
          id,
          object: 'chat.completion.chunk',
          created,
          model: run.model,
          choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
        });
        return sendSse(
          request,
          reply,
          (async function* () {
            yield { data: chunk({ role: 'assistant', content: '' }, null) };
            for await (const event of run.events) {
              if (event.type === 'delta') yield { data: chunk({ content: event.text }, null) };
              else {
                yield { data: chunk({}, event.result.finishReason) };
                if (includeUsage) {
                  const u = event.result.usage;
                  yield { data: { id, object: 'chat.completion.chunk', created, model: run.model, choices: [], usage: openAiUsage(u) } };
                }
              }
            }
            yield { data: '[DONE]' };
          })(),
        );
      }
      const { text, finishReason, usage: u } = await generation.result(run);
      return {
        id,
        object: 'chat.completion' as const,
        created,
        model: run.model,
        choices: [{ index: 0, message: { role: 'assistant' as const, content: text, refusal: null }, finish_reason: finishReason, logprobs: null }],
        usage: openAiUsage(u),
      };
    },
  );
};
