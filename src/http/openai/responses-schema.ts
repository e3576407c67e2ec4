/** The OpenAI Responses API shapes (/v1/responses): request, response object, stream events, input items. */
import { z } from 'zod';
import { samplingFields } from '../generation-params.ts';
import { keepAliveSchema, llmModelSchema } from '../schemas.ts';

/** Input items per request: a generous bound that keeps validation and storage cheap. */
export const MAX_INPUT_ITEMS = 1024;

/**
 * Fields a strict schema does not know are a 400 `Unknown parameter: 'input[0].foo'.`, as OpenAI
 * answers, but only on the shapes we honour (message items, text parts): an item or part of a type
 * we refuse anyway (tool calls, images…) keeps its own fields, so its 400 names the type instead.
 */
function unknownKeys(known: ReadonlySet<string>, honoured: (v: Record<string, unknown>) => boolean) {
  return (value: Record<string, unknown>, ctx: z.RefinementCtx) => {
    if (!honoured(value)) return;
    const keys = Object.keys(value).filter((k) => !known.has(k));
    if (keys.length > 0) ctx.addIssue({ code: 'unrecognized_keys', keys, input: value, message: `Unrecognized key(s) in object: ${keys.map((k) => `'${k}'`).join(', ')}` });
  };
}

const TEXT_PART_KEYS = new Set(['type', 'text', 'annotations', 'logprobs']);
const part = z
  .object({ type: z.string().max(64), text: z.string().optional(), annotations: z.array(z.unknown()).max(1024).optional(), logprobs: z.array(z.unknown()).optional() })
  .catchall(z.unknown())
  .superRefine(unknownKeys(TEXT_PART_KEYS, (p) => p.type === 'input_text' || p.type === 'output_text'))
  .describe('`input_text` / `output_text` parts are honoured (`annotations`/`logprobs` of earlier output are accepted and ignored); `input_image`, `input_file`, `input_audio` are a 400.');

const MESSAGE_KEYS = new Set(['type', 'role', 'content', 'id', 'status']);
export const inputItemSchema = z
  .object({
    type: z.string().max(64).optional().describe('`message` (the default). Other item types (tool calls, reasoning, item references) are a 400.'),
    role: z.enum(['system', 'developer', 'user', 'assistant']).optional(),
    content: z.union([z.string(), z.array(part).max(MAX_INPUT_ITEMS)]).optional(),
    id: z.string().max(128).optional(),
    status: z.string().max(32).optional(),
  })
  .catchall(z.unknown())
  .superRefine(unknownKeys(MESSAGE_KEYS, (item) => item.type === undefined || item.type === 'message'));
export type InputItem = z.infer<typeof inputItemSchema>;

const textFormat = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('text') }),
  z.strictObject({ type: z.literal('json_object') }),
  z.strictObject({
    type: z.literal('json_schema'),
    name: z.string().max(64).optional(),
    description: z.string().optional(),
    schema: z.record(z.string(), z.unknown()).describe('JSON Schema the output must match (enforced with a llama.cpp grammar).'),
    strict: z.boolean().nullable().optional(),
  }),
]);

/** Parameters we cannot honour: accepted only at their neutral values, else a 400 naming them. */
const unsupported = {
  tools: z.array(z.unknown()).max(0, 'tools are not supported by this server').optional(),
  tool_choice: z
    .union([z.literal('none'), z.literal('auto')])
    .optional()
    .describe('Only `none` / `auto` (there are no tools); `required` or a specific tool is a 400.'),
  parallel_tool_calls: z.boolean().nullable().optional(),
  reasoning: z
    .strictObject({
      effort: z.union([z.null(), z.literal('none')], { error: 'reasoning effort is not supported by this server (the model does not reason)' }).optional(),
      summary: z.null({ error: 'reasoning summaries are not supported by this server' }).optional(),
      generate_summary: z.null({ error: 'reasoning summaries are not supported by this server' }).optional(),
    })
    .nullable()
    .optional()
    .describe('Only null / `{"effort":"none"}`: the model does not reason.'),
  background: z
    .boolean()
    .nullable()
    .optional()
    .refine((v) => !v, 'background responses are not supported by this server'),
  top_logprobs: z
    .number()
    .int()
    .nullable()
    .optional()
    .refine((v) => !v, 'logprobs are not supported by this server'),
  include: z
    .array(z.string().max(128))
    .max(16)
    .nullable()
    .optional()
    .refine((v) => !v?.includes('message.output_text.logprobs'), 'logprobs are not supported by this server')
    .describe('Accepted; nothing here produces the extra data it asks for (logprobs: 400).'),
  conversation: z.null({ error: 'conversations are not supported by this server: use previous_response_id' }).optional(),
  prompt: z.null({ error: 'prompt templates are not supported by this server' }).optional(),
};

// strict, as OpenAI: a field it does not know is a 400 `Unknown parameter: 'x'.` naming it
// (error-handling.ts maps zod's unrecognized_keys), not silently ignored
export const responseRequestSchema = z
  .strictObject({
    model: llmModelSchema,
    keep_alive: keepAliveSchema,
    input: z
      .union([z.string(), z.array(inputItemSchema).max(MAX_INPUT_ITEMS)])
      .describe(`A user message, or up to ${MAX_INPUT_ITEMS} message items (roles system/developer/user/assistant; \`input_text\`/\`output_text\` parts).`),
    instructions: z.string().nullable().optional().describe('A system message for this response only (not carried over by `previous_response_id`).'),
    max_output_tokens: z.number().int().min(1).nullable().optional().describe('Capped by LLM_MAX_TOKENS. Reaching it makes the response `incomplete`.'),
    temperature: samplingFields.temperature.nullable(),
    top_p: samplingFields.top_p.nullable(),
    text: z
      .strictObject({ format: textFormat.optional(), verbosity: z.literal('medium').nullable().optional() })
      .nullable()
      .optional()
      .describe('`format` `json_object` / `json_schema` constrain the output to valid JSON (matching the schema) with a grammar.'),
    metadata: z
      .record(z.string().max(64), z.string().max(512))
      .refine((m) => Object.keys(m).length <= 16, 'at most 16 metadata keys')
      .nullable()
      .optional(),
    store: z.boolean().nullable().optional().describe('Keep the response (default true) for GET, input_items and previous_response_id, for SESSION_TTL_SECONDS.'),
    previous_response_id: z.string().max(128).nullable().optional().describe('Continue from a stored response: its conversation (within SESSION_HISTORY_TURNS / SESSION_HISTORY_TOKENS) comes before `input`.'),
    stream: samplingFields.stream,
    stream_options: z.strictObject({ include_obfuscation: z.boolean().optional() }).nullable().optional(),
    truncation: z
      .enum(['disabled', 'auto'])
      .nullable()
      .optional()
      .describe('`disabled` (default): a prompt beyond the context window is a 400 `context_length_exceeded`. `auto`: the oldest turns (never system messages or instructions, never the last user message) are dropped until it fits.'),
    max_tool_calls: z.number().int().min(1).nullable().optional().describe('Accepted; there are no tools.'),
    prompt_cache_retention: z.string().max(32).nullable().optional(),
    user: z.string().max(256).optional(),
    safety_identifier: z.string().max(256).optional(),
    prompt_cache_key: z.string().max(256).optional(),
    service_tier: z.string().max(32).nullable().optional(),
    ...unsupported,
  })
  .meta({
    id: 'ResponseRequest',
    example: { model: 'gemma-3-1b-it', instructions: 'Answer briefly.', input: 'What is the capital of France?', max_output_tokens: 64 },
  });
export type ResponseRequest = z.infer<typeof responseRequestSchema>;

const outputText = z.object({ type: z.literal('output_text'), text: z.string(), annotations: z.array(z.unknown()).max(0), logprobs: z.array(z.unknown()).max(0) });
const messageItem = z.object({
  type: z.literal('message'),
  id: z.string(),
  status: z.enum(['in_progress', 'completed', 'incomplete']),
  role: z.literal('assistant'),
  content: z.array(outputText),
});

export const responseObjectSchema = z
  .object({
    id: z.string(),
    object: z.literal('response'),
    created_at: z.number().int(),
    status: z.enum(['in_progress', 'completed', 'incomplete', 'failed']),
    background: z.boolean(),
    error: z.object({ code: z.string(), message: z.string() }).nullable(),
    incomplete_details: z.object({ reason: z.literal('max_output_tokens') }).nullable(),
    instructions: z.string().nullable(),
    max_output_tokens: z.number().int().nullable(),
    model: z.string(),
    output: z.array(messageItem),
    output_text: z.string().describe('All output text joined (the SDKs compute the same).'),
    parallel_tool_calls: z.boolean(),
    previous_response_id: z.string().nullable(),
    reasoning: z.object({ effort: z.null(), summary: z.null() }),
    store: z.boolean(),
    temperature: z.number().nullable(),
    text: z.object({ format: z.record(z.string(), z.unknown()) }),
    tool_choice: z.string(),
    tools: z.array(z.unknown()).max(0),
    top_p: z.number().nullable(),
    truncation: z.string(),
    usage: z
      .object({
        input_tokens: z.number().int(),
        input_tokens_details: z.object({ cached_tokens: z.number().int() }),
        output_tokens: z.number().int(),
        output_tokens_details: z.object({ reasoning_tokens: z.number().int() }),
        total_tokens: z.number().int(),
      })
      .nullable(),
    user: z.string().nullable(),
    metadata: z.record(z.string(), z.string()),
  })
  .meta({
    id: 'Response',
    example: {
      id: 'resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b',
      object: 'response',
      created_at: 1764150000,
      status: 'completed',
      background: false,
      error: null,
      incomplete_details: null,
      instructions: 'Answer briefly.',
      max_output_tokens: 64,
      model: 'gemma-3-1b-it-Q4_K_M',
      output: [{ type: 'message', id: 'msg_67ccd2bf17f0819081ff3bb2cf6508e6', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: 'Paris.', annotations: [], logprobs: [] }] }],
      output_text: 'Paris.',
      parallel_tool_calls: false,
      previous_response_id: null,
      reasoning: { effort: null, summary: null },
      store: true,
      temperature: null,
      text: { format: { type: 'text' } },
      tool_choice: 'none',
      tools: [],
      top_p: null,
      truncation: 'disabled',
      usage: { input_tokens: 21, input_tokens_details: { cached_tokens: 0 }, output_tokens: 3, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 24 },
      user: null,
      metadata: {},
    },
  });
export type ResponseObject = z.infer<typeof responseObjectSchema>;
export type OutputMessage = z.infer<typeof messageItem>;

/** An input item as stored and listed: a message with an id and its parts. */
export const storedItemSchema = z.object({
  type: z.literal('message'),
  id: z.string(),
  status: z.literal('completed'),
  role: z.enum(['system', 'developer', 'user', 'assistant']),
  content: z.array(z.object({ type: z.enum(['input_text', 'output_text']), text: z.string() })),
});
export type StoredItem = z.infer<typeof storedItemSchema>;

export const inputItemListSchema = z
  .object({
    object: z.literal('list'),
    data: z.array(storedItemSchema),
    first_id: z.string().nullable(),
    last_id: z.string().nullable(),
    has_more: z.boolean(),
  })
  .meta({ id: 'ResponseInputItemList' });

export const inputItemsQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(20).describe('1 to 100 items per page.'),
  order: z.enum(['asc', 'desc']).default('desc').describe('`desc` (the default): newest first, as OpenAI.'),
  after: z.string().max(128).optional().describe('An item id: the page starts after it.'),
  before: z.string().max(128).optional().describe('An item id: the page ends before it.'),
  include: z.union([z.string(), z.array(z.string())]).optional(),
});

export const responseIdParams = z.object({ id: z.string().max(1024).describe('A `resp_…` id.') });

export const deletedSchema = z.object({ id: z.string(), object: z.literal('response.deleted'), deleted: z.literal(true) }).meta({ id: 'ResponseDeleted' });
