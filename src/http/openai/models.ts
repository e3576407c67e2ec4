/** OpenAI-compatible GET /v1/models: every configured model (text, speech-to-text, and voices of a models file), with its state. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { EngineRegistry, ModelReport } from '../../engines/registry.ts';
import { ApiError } from '../../errors.ts';
import { clientSignal } from '../request-signal.ts';
import { registerJsonBody } from '../json-body.ts';
import { errorResponses, keepAliveSchema } from '../schemas.ts';

const STARTED = Math.floor(Date.now() / 1000);

const EXAMPLE = { id: 'gemma-3-1b-it-Q4_K_M', object: 'model' as const, created: 1764150000, owned_by: 'gemma-3-api', capability: 'llm' as const, state: 'loaded' as const, aliases: ['gpt-4o-mini'], default: true, memory_bytes: 1_073_741_824, memory_need_bytes: 1_073_741_824, device: 'cpu' };

const modelSchema = z
  .object({
    id: z.string().describe('What to send as `model`.'),
    object: z.literal('model'),
    created: z.number().int(),
    owned_by: z.string(),
    capability: z.enum(['llm', 'stt', 'tts']).describe('`llm`: the text routes; `stt`: the transcription routes; `tts`: the speech routes (listed when the models file names voice models).'),
    state: z.enum(['loaded', 'loading', 'unloading', 'unloaded', 'error']).describe('`unloaded`: not loaded now (loads on the next request naming it); `loading`: also when loading again after an unload; `unloading`: its runner is stopping (`memory_bytes`: what the process still holds); `error`: see GET /health/ready for why.'),
    aliases: z.array(z.string()).describe('Other names that pick this model.'),
    default: z.boolean().describe('Answers requests that name no model (and the SDK default names).'),
    memory_bytes: z.number().int().optional().describe('Memory the model holds now as the memory budget accounts it (`memory_need_bytes` while loaded or loading); absent while unloaded.'),
    memory_need_bytes: z.number().int().optional().describe('What loading it counts against its device\'s MODEL_MEMORY_BUDGET_MB: `memory_mb` of the models file, else the larger of an estimate from its file and its runner\'s measured RSS (docs/operations.md#memory-budget). Local models only.'),
    device: z.string().optional().describe('The device it counts against: `cpu`, `cuda:N`… (`auto` counts as `cpu`). Local models only.'),
  })
  .meta({ id: 'Model', example: EXAMPLE });

export const modelListSchema = z
  .object({
    object: z.literal('list'),
    data: z.array(modelSchema),
    memory_budgets: z
      .array(z.object({ device: z.string(), budget_bytes: z.number().int(), used_bytes: z.number().int().describe('What the runner models loaded or loading there hold.') }))
      .optional()
      .describe('MODEL_MEMORY_BUDGET_MB per device, with what is held there now; absent without a budget.'),
  })
  .meta({ id: 'ModelList', example: { object: 'list', data: [EXAMPLE], memory_budgets: [{ device: 'cpu', budget_bytes: 16_777_216_000, used_bytes: 1_073_741_824 }] } });

/** POST /v1/models/{id}/load's optional body (as Ollama's load: a request with no prompt). */
const loadBodySchema = z
  .strictObject({ keep_alive: keepAliveSchema })
  .nullish()
  .describe('Optional: `keep_alive` sets how long the model stays loaded once idle (as a request\'s `keep_alive`; overrides MODEL_KEEP_ALIVE for it from now on).');

export const modelRoutes: FastifyPluginAsyncZod<{ engines: EngineRegistry }> = async (app, { engines }) => {
  // load/unload take an optional body: an empty one sent with content-type application/json is none (here only)
  registerJsonBody(app, { allowEmpty: true });

  app.get(
    '/v1/models',
    {
      schema: {
        tags: ['openai'],
        summary: 'List models (OpenAI-compatible)',
        description: 'Every configured model, text and speech-to-text, with its `capability`, `state` and memory where known (fields beside OpenAI\'s id/object/created/owned_by). A request\'s `model` picks one by id or alias.',
        response: { 200: modelListSchema },
      },
    },
    async () => {
      const budgets = engines.memory().map((d) => ({ device: d.device, budget_bytes: d.budgetBytes, used_bytes: d.usedBytes }));
      return { object: 'list' as const, data: listed(engines), ...(budgets.length > 0 ? { memory_budgets: budgets } : {}) };
    },
  );

  app.get(
    '/v1/models/:model',
    {
      schema: {
        tags: ['openai'],
        summary: 'Retrieve a model (OpenAI-compatible)',
        description: 'One model of GET /v1/models by id or alias (`whisper-1`, `gpt-4o-mini-transcribe`, `gpt-4o-transcribe`: the default speech-to-text model); 404 envelope for any other name.',
        params: z.object({ model: z.string().max(256) }),
        response: { 200: modelSchema, ...errorResponses(404) },
      },
    },
    async (request) => {
      const entry = engines.byId(request.params.model); // 404 for an unknown name
      const found = listed(engines).find((m) => m.id === entry.id && m.capability === entry.capability);
      if (!found) throw new ApiError(404, 'not_found_error', `The model '${request.params.model}' is switched off on this server (see GET /v1/models).`, { param: 'model', code: 'model_not_found' });
      return found;
    },
  );

  for (const action of ['load', 'unload'] as const) {
    app.post(
      `/v1/models/:model/${action}`,
      {
        // one tenant must not unload a model others use, nor force loads (src/http/auth.ts)
        config: { operator: true },
        schema: {
          tags: ['openai'],
          summary: action === 'load' ? 'Load a model now (operators)' : 'Unload a model now (operators)',
          description:
            action === 'load'
              ? 'Loads a model of GET /v1/models (by id or alias) and answers when it has settled, with its state (`error`: see GET /health/ready for why). Under MODEL_MEMORY_BUDGET_MB it first unloads least recently used idle models on its device; 503 `insufficient_memory` when it cannot fit. 404 for an unknown name. With API keys on, needs an operator key (ADMIN_API_KEYS): other keys get 403 `permission_denied`.'
              : 'Frees a model\'s memory now (its runner process exits); the next request naming it loads it again. 409 `model_busy` while requests use it, 409 `model_not_unloadable` for engines that do not run in a runner process (whisper.cpp in-process, remote servers). 404 for an unknown name. With API keys on, needs an operator key (ADMIN_API_KEYS): other keys get 403 `permission_denied`.',
          params: z.object({ model: z.string().max(256) }),
          ...(action === 'load' ? { body: loadBodySchema } : {}),
          response: { 200: modelSchema, ...errorResponses(400, 403, 404, 409, 503) },
        },
      },
      async (request, reply) => {
        if (action === 'unload') return view(await engines.unloadModel(request.params.model));
        return view(await engines.loadModel(request.params.model, clientSignal(reply), (request.body as z.infer<typeof loadBodySchema>)?.keep_alive));
      },
    );
  }
};

function listed(engines: EngineRegistry) {
  return engines.models().map(view);
}

function view({ memoryBytes, memoryNeedBytes, ...m }: ModelReport) {
  return {
    ...m,
    object: 'model' as const,
    created: STARTED,
    owned_by: 'gemma-3-api',
    ...(memoryBytes === undefined ? {} : { memory_bytes: memoryBytes }),
    ...(memoryNeedBytes === undefined ? {} : { memory_need_bytes: memoryNeedBytes }),
  };
}
