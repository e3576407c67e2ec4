/**
 * buildApp(config, deps): the Fastify app with every route, used by main.ts and by the tests.
 * Engines, metrics, keys and logger are built by the caller (the composition root) and passed in.
 */
import websocket from '@fastify/websocket';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import type { Config } from './config.ts';
import type { EngineRegistry } from './engines/registry.ts';
import { ApiKeyStore, registerAuth, WS_KEY_PROTOCOL_PREFIX } from './http/auth.ts';
import { DOCS_PREFIX, registerDocsUi, registerOpenApi } from './http/docs.ts';
import { registerErrorHandling } from './http/error-handling.ts';
import { healthRoutes } from './http/health.ts';
import { metricsRoutes } from './http/metrics.ts';
import { pendingRoutes } from './http/pending.ts';
import { redactUrl } from './observability/logger.ts';
import type { Metrics } from './observability/metrics.ts';
import { requestIdGenerator } from './observability/request-id.ts';
import { VERSION } from './version.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Served without an API key. */
    public?: boolean;
  }
}

export interface AppDeps {
  engines: EngineRegistry;
  metrics: Metrics;
  logger: Logger;
  keys: ApiKeyStore;
}

export const WS_PROTOCOL = 'gemma-3-api';

/** Picks our own subprotocol (never the one that carries the key) so browsers accept the handshake. */
function selectProtocol(protocols: Set<string>): string | false {
  if (protocols.has(WS_PROTOCOL)) return WS_PROTOCOL;
  for (const p of protocols) if (!p.startsWith(WS_KEY_PROTOCOL_PREFIX)) return p;
  return false;
}

export async function buildApp(config: Config, deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'request_id' }),
    genReqId: requestIdGenerator(config.REQUEST_ID_HEADER),
    requestIdHeader: false,
    bodyLimit: config.MAX_BODY_BYTES,
    return503OnClosing: true,
  }).withTypeProvider<ZodTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  registerErrorHandling(app);

  app.addHook('onRequest', async (request, reply) => {
    void reply.header(config.REQUEST_ID_HEADER, request.id);
  });

  const isPublic = (request: FastifyRequest) =>
    !config.API_KEY_ENABLED ||
    request.routeOptions.config?.public === true ||
    (!config.DOCS_REQUIRE_API_KEY && (request.url === DOCS_PREFIX || request.url.startsWith(`${DOCS_PREFIX}/`)));
  registerAuth(app, deps.keys, { headerName: config.API_KEY_HEADER_NAME, isPublic });

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const latency = reply.elapsedTime;
    deps.metrics.httpDuration.observe({ method: request.method, route, status_code: String(reply.statusCode) }, latency / 1000);
    request.log.info(
      { method: request.method, route, url: redactUrl(request.url), status: reply.statusCode, latency_ms: Math.round(latency * 100) / 100 },
      'request completed',
    );
  });

  await registerOpenApi(app, VERSION);
  await app.register(websocket, {
    options: { maxPayload: config.WS_MAX_MESSAGE_BYTES, handleProtocols: selectProtocol },
  });

  await app.register(healthRoutes, { engines: deps.engines });
  await app.register(metricsRoutes, { metrics: deps.metrics, requireKey: config.METRICS_REQUIRE_API_KEY });
  await app.register(pendingRoutes, { engines: deps.engines });
  await registerDocsUi(app);

  return app;
}
