/**
 * Response serialization from the routes' zod schemas with fast-json-stringify (what Fastify uses
 * for JSON Schema routes): the zod schema is turned into JSON Schema once per route. zod's own
 * serializer (validate + JSON.stringify) cost ~10% of /health throughput. A schema that JSON
 * Schema cannot express falls back to zod's serializer.
 */
import fastJson from 'fast-json-stringify';
import type { FastifySerializerCompiler } from 'fastify';
import { serializerCompiler as zodSerializerCompiler } from 'fastify-type-provider-zod';
import { z } from 'zod';

type SerializerCompiler = Parameters<typeof zodSerializerCompiler>[0];

export function fastSerializerCompiler(routeSchema: SerializerCompiler): (data: unknown) => string {
  const schema = routeSchema.schema;
  if (schema instanceof z.ZodType) {
    try {
      const json = z.toJSONSchema(schema, { target: 'draft-7', io: 'output', unrepresentable: 'throw', metadata: z.registry() });
      return fastJson(json as Parameters<typeof fastJson>[0]);
    } catch {
      // fall through to zod's serializer
    }
  }
  return zodSerializerCompiler(routeSchema) as (data: unknown) => string;
}

export const serializerCompiler = fastSerializerCompiler as unknown as FastifySerializerCompiler<unknown>;
