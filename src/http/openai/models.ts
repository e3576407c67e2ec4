/** OpenAI-compatible GET /v1/models: the model this service generates with. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { EngineRegistry } from '../../engines/registry.ts';
import { ApiError } from '../../errors.ts';
import { errorResponses } from '../schemas.ts';

const STARTED = Math.floor(Date.now() / 1000);

const modelSchema = z
  .object({ id: z.string(), object: z.literal('model'), created: z.number().int(), owned_by: z.string() })
  .meta({ id: 'Model', example: { id: 'gemma-3-1b-it-Q4_K_M', object: 'model', created: 1764150000, owned_by: 'gemma-3-api' } });

export const modelListSchema = z
  .object({
    object: z.literal('list'),
    data: z.array(modelSchema),
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
    async () => ({ object: 'list' as const, data: readyModels(engines) }),
  );

  app.get(
    '/v1/models/:model',
    {
      schema: {
        tags: ['openai'],
        summary: 'Retrieve a model (OpenAI-compatible)',
        description: 'One model of GET /v1/models by id; 404 envelope for any other id.',
        params: z.object({ model: z.string().max(256) }),
        response: { 200: modelSchema, ...errorResponses(404) },
      },
    },
    async (request) => {
      const found = readyModels(engines).find((m) => m.id === request.params.model);
      if (!found) throw new ApiError(404, 'not_found_error', `The model '${request.params.model}' does not exist on this server (see GET /v1/models).`, { param: 'model', code: 'model_not_found' });
      return found;
    },
  );
};

function readyModels(engines: EngineRegistry) {
  const ready = engines.readiness().capabilities.llm.status === 'ready' ? engines.ready('llm') : [];
  return ready.map((e) => ({ id: e.modelName, object: 'model' as const, created: STARTED, owned_by: 'gemma-3-api' }));
}
