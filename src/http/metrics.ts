import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Metrics } from '../observability/metrics.ts';

export const metricsRoutes: FastifyPluginAsyncZod<{ metrics: Metrics; requireKey: boolean }> = async (app, { metrics, requireKey }) => {
  app.get(
    '/metrics',
    {
      config: { public: !requireKey },
      schema: {
        tags: ['operations'],
        summary: 'Prometheus metrics',
        description:
          'Prometheus text exposition: process metrics, `http_request_duration_seconds{method,route,status_code}` (route templates, never raw paths), `dependency_duration_seconds{dependency,operation,outcome}`, `dialogue_turn_duration_seconds{outcome}`, `engine_ready`, and `gpu_*` gauges per device when an NVIDIA GPU is present. Open by default; set METRICS_REQUIRE_API_KEY=true to require the key.',
        produces: ['text/plain'],
        response: {
          200: z.string().meta({ example: '# HELP http_request_duration_seconds HTTP request duration...\n' }),
        },
      },
    },
    async (_request, reply) => {
      const body = await metrics.registry.metrics();
      return reply.type(metrics.registry.contentType).send(body);
    },
  );
};
