/**
 * Liveness (no auth, no engine work) and readiness (per-engine state). Readiness is public, so its
 * `detail` strings — file paths, upstream addresses, library messages such as `connect
 * ECONNREFUSED 127.0.0.1:6379` — go only to callers with a valid key (or everyone with keys off);
 * others get the states.
 */
import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { EngineRegistry } from '../engines/registry.ts';
import type { SessionStore } from '../sessions/types.ts';

const engineReport = z.object({
  engine: z.string().describe('Adapter id, e.g. `llama-cpp`, `whisper-cpp`, `openaudio`, `embedded`.'),
  model: z.string().optional().describe('With a models file (MODELS_FILE): the model this engine serves.'),
  status: z.enum(['ready', 'loading', 'restarting', 'unloaded', 'missing_model', 'disabled', 'error']).describe('`restarting`: the model runner process exited (`detail` says why) and is being started again; `unloaded`: a model loaded on demand that is not loaded now (not yet, or unloaded since): it loads on the next request naming it, and does not hold readiness back.'),
  detail: z.string().optional().describe('Why it is not ready, and the remedy.'),
});
const capabilityReport = z.object({
  status: z.enum(['ready', 'not_ready', 'disabled']).describe('`disabled` capabilities do not block readiness.'),
  engines: z.array(engineReport),
});
export const readinessSchema = z
  .object({
    status: z.enum(['ready', 'not_ready']),
    capabilities: z.object({ llm: capabilityReport, stt: capabilityReport, tts: capabilityReport }),
    sessions: z
      .object({ store: z.enum(['memory', 'redis']), status: z.enum(['ready', 'not_ready']), detail: z.string().optional() })
      .describe('Dialogue memory: in-process, or Redis (not_ready while unreachable, unless SESSION_REDIS_FALLBACK).'),
    jobs: z
      .object({
        queue: z.enum(['memory', 'redis']),
        durable: z.boolean().describe('false without REDIS_URL: queued jobs live in this process only and are not shared with other replicas.'),
        worker: z.boolean().describe('Whether this process transcribes jobs (JOB_WORKER).'),
      })
      .optional()
      .describe('Transcription jobs: BullMQ on Redis (durable, shared by replicas) or an in-process queue.'),
  })
  .meta({
    id: 'Readiness',
    example: {
      status: 'not_ready',
      capabilities: {
        llm: {
          status: 'not_ready',
          engines: [
            {
              engine: 'llama-cpp',
              status: 'missing_model',
              detail: 'GGUF not found at /models/gemma.gguf. Set GEMMA_MODEL to a GGUF path or hf: URI, or run `npm run pull`.',
            },
          ],
        },
        stt: { status: 'ready', engines: [{ engine: 'whisper-cpp', status: 'ready' }] },
        tts: { status: 'ready', engines: [{ engine: 'openaudio', status: 'error', detail: 'fish-speech server at http://localhost:8080 is unreachable' }, { engine: 'espeak', status: 'ready' }] },
      },
      sessions: { store: 'memory', status: 'ready' },
      jobs: { queue: 'memory', durable: false, worker: true },
    },
  });

type Capabilities = z.infer<typeof readinessSchema>['capabilities'];

/** The capabilities without their engines' `detail`. */
function withoutDetails(capabilities: Capabilities): Capabilities {
  const strip = (c: Capabilities['llm']) => ({ ...c, engines: c.engines.map(({ detail: _detail, ...engine }) => engine) });
  return { llm: strip(capabilities.llm), stt: strip(capabilities.stt), tts: strip(capabilities.tts) };
}

export interface JobsReadiness {
  queue: 'memory' | 'redis';
  durable: boolean;
  worker: boolean;
}

export const healthRoutes: FastifyPluginAsyncZod<{ engines: EngineRegistry; sessions: SessionStore; showDetails: (request: FastifyRequest) => boolean; jobs?: () => JobsReadiness }> = async (
  app,
  { engines, sessions, showDetails, jobs },
) => {
  app.get(
    '/health',
    {
      config: { public: true },
      schema: {
        tags: ['health'],
        summary: 'Liveness',
        description: 'Answers while the process runs. No authentication and no engine work: use it for liveness probes and the Docker HEALTHCHECK.',
        response: { 200: z.object({ status: z.literal('ok') }).meta({ example: { status: 'ok' } }) },
      },
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/health/ready',
    {
      config: { public: true },
      schema: {
        tags: ['health'],
        summary: 'Readiness, per engine',
        description:
          'Per-capability and per-engine state: `ready`, `loading`, `missing_model`, `disabled`, `error`. 200 once every configured capability has a ready engine, 503 until then. No authentication; with API keys on, the `detail` strings (the remedy, upstream addresses, the session store\'s error) are included only for a request carrying a valid key.',
        response: { 200: readinessSchema, 503: readinessSchema },
      },
    },
    async (request, reply) => {
      const readiness = engines.readiness();
      const problem = sessions.problem();
      const ready = readiness.ready && problem === null;
      const details = showDetails(request);
      return reply.code(ready ? 200 : 503).send({
        status: ready ? 'ready' : 'not_ready',
        capabilities: details ? readiness.capabilities : withoutDetails(readiness.capabilities),
        sessions: { store: sessions.kind, status: problem === null ? 'ready' : 'not_ready', ...(problem === null || !details ? {} : { detail: problem }) },
        ...(jobs ? { jobs: jobs() } : {}),
      });
    },
  );
};
