/** Request fields shared by the generation routes, mapped onto the engine's GenerationParams. */
import { z } from 'zod';
import type { GenerationParams, ResponseFormat } from '../engines/llm/types.ts';

export const stopSchema = z
  .union([z.string().min(1), z.array(z.string().min(1)).max(4)])
  .optional()
  .describe('Up to 4 sequences where generation stops; the stop text is not included.');

export const samplingFields = {
  temperature: z.number().min(0).max(2).optional().describe('Sampling temperature, 0 = greedy.'),
  top_p: z.number().gt(0).max(1).optional().describe('Nucleus sampling probability mass.'),
  seed: z.number().int().optional().describe('Seed for reproducible sampling.'),
  stop: stopSchema,
  stream: z.boolean().optional().default(false).describe('Stream the output as Server-Sent Events.'),
};

export const responseFormatSchema = z
  .discriminatedUnion('type', [
    z.object({ type: z.literal('text') }),
    z.object({ type: z.literal('json_object') }),
    z.object({
      type: z.literal('json_schema'),
      json_schema: z.object({
        name: z.string().optional(),
        description: z.string().optional(),
        schema: z.record(z.string(), z.unknown()).describe('JSON Schema the output must match (enforced with a llama.cpp grammar).'),
        strict: z.boolean().nullable().optional(),
      }),
    }),
  ])
  .optional()
  .describe('`json_object` or `json_schema`: the output is constrained to valid JSON (matching the schema).');

export function toResponseFormat(format: z.infer<typeof responseFormatSchema>): ResponseFormat | undefined {
  if (!format) return undefined;
  if (format.type === 'json_schema') return { type: 'json_schema', schema: format.json_schema.schema };
  return format;
}

export function toParams(body: {
  maxTokens: number;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  seed?: number;
  stop?: string | string[];
  response_format?: z.infer<typeof responseFormatSchema>;
}): GenerationParams {
  return {
    maxTokens: body.maxTokens,
    temperature: body.temperature,
    topP: body.top_p,
    topK: body.top_k,
    seed: body.seed,
    stop: body.stop === undefined ? undefined : Array.isArray(body.stop) ? body.stop : [body.stop],
    responseFormat: toResponseFormat(body.response_format),
  };
}

/** Our usage in the OpenAI shape. */
export function openAiUsage(u: { promptTokens: number; completionTokens: number }) {
  return { prompt_tokens: u.promptTokens, completion_tokens: u.completionTokens, total_tokens: u.promptTokens + u.completionTokens };
}
