/** OpenAI-compatible GET /v1/models: the model this service generates with. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { EngineRegistry } from '../../engines/registry.ts';

const STARTED = Math.floor(Date.now() / 1000);

export const modelListSchema = z
  .object({
    object: z.literal('list'),
    data: z.array(z.object({ id: z.string(), object: z.literal('model'), created: z.number().int(), owned_by: z.string() })),
  })
  .meta({ id: 'ModelList', example: { object: 'list', data: [{ id: 'gemma-3-1b-it-Q4_K_M', object: 'model', created: 1764150000, owned_by: 'gemma-3-api' }] } });

export const modelRoutes: FastifyPluginAsyncZod<{ engines: EngineRegistry }> = async (app, { engines }) => {
  app.get(
    '/v1/models',
    {
      schema: {
        tags: ['openai'],
        summary: 'List models (OpenAI-compatible)',
        description: 'The text-generation models this service answers with (ready ones). Empty while the model is loading or missing.',
        response: { 200: modelListSchema },
      },
    },
    async () => {
      const ready = engines.readiness().capabilities.llm.status === 'ready' ? engines.ready('llm') : [];
      return { object: 'list' as const, data: ready.map((e) => ({ id: e.modelName, object: 'model' as const, created: STARTED, owned_by: 'gemma-3-api' })) };
    },
  );
};
