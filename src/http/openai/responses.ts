/**
 * OpenAI-compatible Responses API: POST /v1/responses (plain or typed SSE events), GET/DELETE
 * /v1/responses/{id}, POST /v1/responses/{id}/cancel, GET /v1/responses/{id}/input_items. Generation goes through the same
 * GenerationService, message mapping and parameter mapping (json_schema → grammar) as chat
 * completions; stored responses live in the session store (see services/responses.ts).
 */
import { randomBytes } from 'node:crypto';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { z } from 'zod';
import type { ChatMessage, GenerationResult } from '../../engines/llm/types.ts';
import { ApiError } from '../../errors.ts';
import type { GenerationService } from '../../services/generation.ts';
import { pageOfItems, truncations, type ResponseStore } from '../../services/responses.ts';
import { chatMessage, contentText, type responseFormatSchema, toParams } from '../generation-params.ts';
import type { FastifyRequest } from 'fastify';
import { tenantOf, type Owner } from '../../tenancy.ts';
import { clientSignal } from '../request-signal.ts';
import { sendSse, type SseEvent } from '../streaming.ts';
import { errorResponses } from '../schemas.ts';
import {
  deletedSchema,
  inputItemListSchema,
  inputItemsQuerySchema,
  responseIdParams,
  responseObjectSchema,
  responseRequestSchema,
  type OutputMessage,
  type ResponseObject,
  type ResponseRequest,
  type StoredItem,
} from './responses-schema.ts';

const id = (prefix: string, bytes: number) => `${prefix}_${randomBytes(bytes).toString('hex')}`;

/** The request's input as stored message items; anything but text messages is a 400 naming it. */
function toItems(input: ResponseRequest['input']): StoredItem[] {
  if (typeof input === 'string') return [{ type: 'message', id: id('msg', 16), status: 'completed', role: 'user', content: [{ type: 'input_text', text: input }] }];
  return input.map((item, i) => {
    if (item.type !== undefined && item.type !== 'message') {
      throw ApiError.badRequest(`Input items of type "${item.type}" are not supported (only messages: tools and reasoning are not).`, `input[${i}].type`, 'unsupported_value');
    }
    if (!item.role) throw ApiError.badRequest('A message item needs a role (system, developer, user or assistant).', `input[${i}].role`);
    const text = contentText(item.content, ['input_text', 'output_text'], `input[${i}]`);
    return { type: 'message', id: id('msg', 16), status: 'completed', role: item.role, content: [{ type: item.role === 'assistant' ? 'output_text' : 'input_text', text }] };
  });
}

/** `text.format` in the Chat Completions `response_format` shape, so both routes share one grammar path. */
function responseFormat(format: NonNullable<NonNullable<ResponseRequest['text']>['format']> | undefined): z.infer<typeof responseFormatSchema> {
  if (format?.type !== 'json_schema') return format;
  return { type: 'json_schema', json_schema: { name: format.name, description: format.description, schema: format.schema, strict: format.strict } };
}

const overflows = (error: unknown): error is ApiError => error instanceof ApiError && error.code === 'context_length_exceeded';

/** `error` naming another field: the same status, type, code and headers. */
const renamed = (error: ApiError, param: string, message = error.message) => new ApiError(error.statusCode, error.type, message, { param, code: error.code, headers: error.headers });

/** The Chat Completions names of the JSON schema's field, longest first: `response_format.json_schema.schema`, `…json_schema`, `response_format`. */
const CHAT_SCHEMA_FIELD = /\bresponse_format(?:\.json_schema(?:\.schema)?)?/g;
const SCHEMA_FIELD = 'text.format.schema';

/**
 * A schema error of the shared grammar path (GRAMMAR_* bounds, what the grammar cannot honour,
 * what llama.cpp refuses) in this route's shape: that path takes `text.format` in the Chat
 * Completions shape (`responseFormat` below) and so names `response_format` — bare, or with
 * its `json_schema.schema` path in the message — where the body sent `text.format.schema`
 * (docs/errors.md: `param` names the field as sent; OpenAI names it so too). A sub-path after
 * `response_format.json_schema.schema` is kept.
 */
function inResponsesShape(error: unknown): unknown {
  if (!(error instanceof ApiError) || error.param === null || !/^response_format(\.|$)/.test(error.param)) return error;
  const param = error.param.replace(/^response_format(?:\.json_schema(?:\.schema)?)?/, SCHEMA_FIELD);
  return renamed(error, param, error.message.replace(CHAT_SCHEMA_FIELD, SCHEMA_FIELD));
}

/**
 * Starts the generation. A prompt beyond the context window is a 400 — named `input` (the engine
 * names chat `messages`; here the prompt is input, instructions and history) — unless truncation
 * is `auto`: then the oldest turns are dropped until it fits (services/responses.ts truncations).
 */
async function startFitting<T>(messages: ChatMessage[], attempt: (prompt: ChatMessage[]) => Promise<T>, truncate: boolean): Promise<T> {
  let overflow: ApiError;
  try {
    return await attempt(messages);
  } catch (error) {
    if (!overflows(error)) throw inResponsesShape(error);
    overflow = error;
  }
  if (truncate) {
    for (const fewer of truncations(messages)) {
      try {
        return await attempt(fewer);
      } catch (error) {
        if (!overflows(error)) throw inResponsesShape(error);
        overflow = error;
      }
    }
  }
  throw renamed(overflow, 'input');
}

/** A stored response's owner: the tenant of the request's key (src/tenancy.ts); null with keys off. */
const ownerOf = (request: FastifyRequest): Owner => tenantOf(request) ?? null;

export const responseRoutes: FastifyPluginAsyncZod<{ generation: GenerationService; responses: ResponseStore }> = async (
  app,
  { generation, responses },
) => {
  app.post(
    '/v1/responses',
    {
      schema: {
        tags: ['openai'],
        summary: 'Create a response (OpenAI Responses API)',
        description:
          'The OpenAI Responses API over the loaded Gemma 3 model (the official SDKs, the Vercel AI SDK and LangChain work against it). `input` is a string or message items; `instructions` is a system message for this response only. `text.format` `json_object`/`json_schema` is enforced with a llama.cpp grammar. Responses are stored (unless `store: false`) for SESSION_TTL_SECONDS — in Redis when REDIS_URL is set, so every replica sees them — and belong to the API key that created them. `previous_response_id` continues a stored conversation (within SESSION_HISTORY_TURNS / SESSION_HISTORY_TOKENS). `stream: true` sends OpenAI\'s typed events, each with a `sequence_number`: `response.created`, `response.in_progress`, `response.output_item.added`, `response.content_part.added`, `response.output_text.delta`…, `response.output_text.done`, `response.content_part.done`, `response.output_item.done`, then `response.completed` (or `response.incomplete` when `max_output_tokens` is reached, `response.failed` with an `error`). Not supported (400 naming the parameter): tools, reasoning effort/summaries, images/files/audio, `background: true`, logprobs. A field OpenAI does not know: 400 `Unknown parameter: \'x\'.` (code `unknown_parameter`). `truncation: "auto"` drops the oldest turns until the prompt fits the context window.',
        body: responseRequestSchema,
        response: { 200: responseObjectSchema, ...errorResponses(400, 404, 429, 503) },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const owner = ownerOf(request);
      const store = body.store ?? true;
      if (store) responses.assertWritable();
      const previous = body.previous_response_id ? await responses.get(body.previous_response_id, owner, 'previous_response_id') : undefined;
      const items = toItems(body.input);
      const input: ChatMessage[] = items.map((item) => chatMessage(item.role, item.content[0]!.text));
      if (!input.some((m) => m.role === 'user')) throw ApiError.badRequest('The input needs at least one user message.', 'input');
      const context = previous ? responses.context(previous.history) : [];
      const messages = [...(body.instructions ? [{ role: 'system' as const, content: body.instructions }] : []), ...context, ...input];
      const format = body.text?.format;
      const params = toParams({ maxTokens: body.max_output_tokens ?? Number.MAX_SAFE_INTEGER, temperature: body.temperature ?? undefined, top_p: body.top_p ?? undefined, response_format: responseFormat(format) });
      // everything that can fail with a status (unknown previous id, 429, context overflow) fails before the first byte
      const signal = clientSignal(reply);
      const attempt = (prompt: ChatMessage[]) => generation.start({ kind: 'chat', messages: prompt }, params, signal, body.stream ? 'stream' : 'generate', body.model, body.keep_alive);
      const run = await startFitting(messages, attempt, body.truncation === 'auto');

      const base: ResponseObject = {
        id: id('resp', 24),
        object: 'response',
        created_at: Math.floor(Date.now() / 1000),
        status: 'in_progress',
        background: false,
        error: null,
        incomplete_details: null,
        instructions: body.instructions ?? null,
        max_output_tokens: body.max_output_tokens ?? null,
        model: run.model,
        output: [],
        output_text: '',
        parallel_tool_calls: false,
        previous_response_id: body.previous_response_id ?? null,
        reasoning: { effort: null, summary: null },
        store,
        temperature: body.temperature ?? null,
        text: { format: format ?? { type: 'text' } },
        tool_choice: body.tool_choice ?? 'none',
        tools: [],
        top_p: body.top_p ?? null,
        truncation: body.truncation ?? 'disabled',
        usage: null,
        user: body.user ?? null,
        metadata: body.metadata ?? {},
      };
      const messageId = id('msg', 16);
      const message = (text: string, status: OutputMessage['status']): OutputMessage => ({
        type: 'message',
        id: messageId,
        status,
        role: 'assistant',
        content: status === 'in_progress' ? [] : [{ type: 'output_text', text, annotations: [], logprobs: [] }],
      });
      /** The finished response object; stored (when asked) before the client hears it is done. */
      const finish = async (result: GenerationResult): Promise<ResponseObject> => {
        const incomplete = result.finishReason === 'length';
        const response: ResponseObject = {
          ...base,
          status: incomplete ? 'incomplete' : 'completed',
          incomplete_details: incomplete ? { reason: 'max_output_tokens' } : null,
          output: [message(result.text, incomplete ? 'incomplete' : 'completed')],
          output_text: result.text,
          usage: {
            input_tokens: result.usage.promptTokens,
            input_tokens_details: { cached_tokens: 0 },
            output_tokens: result.usage.completionTokens,
            output_tokens_details: { reasoning_tokens: 0 },
            total_tokens: result.usage.promptTokens + result.usage.completionTokens,
          },
        };
        if (store) await responses.put({ owner, response, items, history: [...context, ...input, { role: 'assistant', content: result.text }] });
        return response;
      };

      if (!body.stream) {
        return finish(await generation.result(run));
      }

      let sequence = 0;
      const event = (type: string, fields: Record<string, unknown>): SseEvent => ({ event: type, data: { type, sequence_number: sequence++, ...fields } });
      const at = { item_id: messageId, output_index: 0, content_index: 0 };
      // a failure after the first byte is sendSse's to log, as on every streamed route (a client
      // that left: one info line, docs/errors.md); the Responses API tells it as `response.failed`
      const failed = (error: ApiError) => event('response.failed', { response: { ...base, status: 'failed', error: { code: error.code ?? error.type, message: error.message } } });
      return sendSse(
        request,
        reply,
        (async function* () {
          yield event('response.created', { response: base });
          yield event('response.in_progress', { response: base });
          yield event('response.output_item.added', { output_index: 0, item: message('', 'in_progress') });
          yield event('response.content_part.added', { ...at, part: { type: 'output_text', text: '', annotations: [], logprobs: [] } });
          let response: ResponseObject | undefined;
          for await (const e of run.events) {
            if (e.type === 'delta') yield event('response.output_text.delta', { ...at, delta: e.text, logprobs: [] });
            else response = await finish(e.result);
          }
          if (!response) throw new Error('generation ended without a result');
          const item = response.output[0]!;
          const text = response.output_text;
          yield event('response.output_text.done', { ...at, text, logprobs: [] });
          yield event('response.content_part.done', { ...at, part: item.content[0] });
          yield event('response.output_item.done', { output_index: 0, item });
          yield event(response.status === 'incomplete' ? 'response.incomplete' : 'response.completed', { response });
        })(),
        failed,
      );
    },
  );

  app.get(
    '/v1/responses/:id',
    {
      schema: {
        tags: ['openai'],
        summary: 'Retrieve a stored response',
        description: 'A response stored by POST /v1/responses (within SESSION_TTL_SECONDS). Another API key\'s response, an expired, deleted or unknown id: 404.',
        params: responseIdParams,
        response: { 200: responseObjectSchema, ...errorResponses(404, 503) },
      },
    },
    async (request) => (await responses.get(request.params.id, ownerOf(request))).response,
  );

  app.delete(
    '/v1/responses/:id',
    {
      schema: {
        tags: ['openai'],
        summary: 'Delete a stored response',
        description: 'Forgets a stored response (it can no longer be retrieved or continued). Unknown or another API key\'s id: 404.',
        params: responseIdParams,
        response: { 200: deletedSchema, ...errorResponses(404, 503) },
      },
    },
    async (request) => {
      await responses.delete(request.params.id, ownerOf(request));
      return { id: request.params.id, object: 'response.deleted' as const, deleted: true as const };
    },
  );

  app.post(
    '/v1/responses/:id/cancel',
    {
      schema: {
        tags: ['openai'],
        summary: 'Cancel a background response',
        description:
          'As OpenAI: only a response created with `background: true` can be cancelled. This server runs none in the background (`background: true` is a 400), so a stored response of yours is a 400 `Cannot cancel a synchronous response.`; an unknown, expired or another API key\'s id is a 404. To stop a response in progress, close its connection (its generation stops).',
        params: responseIdParams,
        response: { 200: responseObjectSchema, ...errorResponses(400, 404, 503) },
      },
    },
    async (request) => {
      await responses.get(request.params.id, ownerOf(request));
      throw new ApiError(400, 'invalid_request_error', 'Cannot cancel a synchronous response.', { code: 'response_not_cancellable' });
    },
  );

  app.get(
    '/v1/responses/:id/input_items',
    {
      schema: {
        tags: ['openai'],
        summary: 'List the input items of a stored response',
        description:
          'The message items the response was created from (its own `input`, not the earlier turns a `previous_response_id` brought in), paginated as OpenAI: `limit` (1-100, default 20), `order` (`desc` default), `after`/`before` item ids; `has_more`, `first_id`, `last_id`.',
        params: responseIdParams,
        querystring: inputItemsQuerySchema,
        response: { 200: inputItemListSchema, ...errorResponses(400, 404, 503) },
      },
    },
    async (request) => pageOfItems((await responses.get(request.params.id, ownerOf(request))).items, request.query),
  );
};
