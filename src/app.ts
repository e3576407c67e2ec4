/**
 * buildApp(config, deps): the Fastify app with every route, used by main.ts and by the tests.
 * Engines, metrics, keys and logger are built by the caller (the composition root) and passed in.
 */
import websocket from '@fastify/websocket';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import { validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { serializerCompiler } from './http/serializer.ts';
import type { Logger } from 'pino';
import type { Config } from './config.ts';
import { ApiError } from './errors.ts';
import type { EngineRegistry } from './engines/registry.ts';
import { Authenticator, isKeyProtocol, type ApiKeyStore } from './http/auth.ts';
import { AuthFailureLimiter } from './http/auth-failures.ts';
import { DOCS_PREFIX, registerDocsUi, registerOpenApi } from './http/docs.ts';
import { PLAYGROUND_PREFIX, registerPlayground } from './http/playground.ts';
import { SocketLimits } from './http/ws/limits.ts';
import { SocketDrain } from './http/ws/shutdown.ts';
import type { WebSocket } from 'ws';
import { checkWebSocketOrigin, registerProtection, webSocketOriginPolicy } from './http/protection.ts';
import { registerErrorHandling } from './http/error-handling.ts';
import { registerContentEncoding } from './http/content-encoding.ts';
import { clientErrorHandler, frameworkErrorHandler, requestShapeError } from './http/framework-errors.ts';
import { healthRoutes } from './http/health.ts';
import { metricsRoutes } from './http/metrics.ts';
import { generateRoutes } from './http/generate.ts';
import { chatCompletionRoutes } from './http/openai/chat-completions.ts';
import { completionRoutes } from './http/openai/completions.ts';
import { responseRoutes } from './http/openai/responses.ts';
import { ResponseStore } from './services/responses.ts';
import { modelRoutes } from './http/openai/models.ts';
import { speechToTextRoutes } from './http/speech-to-text.ts';
import { jobRoutes } from './http/jobs.ts';
import { createJobs, type Jobs } from './jobs/index.ts';
import { GenerationService } from './services/generation.ts';
import { TranscriptionService } from './services/transcription.ts';
import { SynthesisService } from './services/synthesis.ts';
import { textToSpeechRoutes } from './http/text-to-speech.ts';
import { voiceRoutes } from './http/voices.ts';
import { ttsSocketRoutes } from './http/ws/tts.ts';
import { sttSocketRoutes } from './http/ws/stt.ts';
import { dialogueSocketRoutes } from './http/ws/dialogue.ts';
import { realtimeSocketRoutes } from './http/ws/realtime.ts';
import { realtimeClientSecretRoutes } from './http/openai/realtime-client-secrets.ts';
import { ClientSecrets } from './realtime/client-secrets.ts';
import { probeFfmpeg } from './audio/ffmpeg.ts';
import { configureDecodePool } from './audio/decode-pool.ts';
import { AudioBudget } from './audio/audio-budget.ts';
import { registerJsonBody } from './http/json-body.ts';
import { DialogueService } from './dialogue/pipeline.ts';
import { loadPrompts } from './dialogue/prompts.ts';
import { dialogueRoutes } from './http/dialogue.ts';
import type { SessionStore } from './sessions/types.ts';
import type { WsDocs } from './http/ws-docs.ts';
import { readTls } from './http/tls.ts';
import { redactUrl } from './observability/logger.ts';
import type { Metrics } from './observability/metrics.ts';
import { requestIdGenerator } from './observability/request-id.ts';
import { VERSION } from './version.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Served without an API key. */
    public?: boolean;
    /** With API keys on, only an operator key (ADMIN_API_KEYS) may call it (403 for other keys). */
    operator?: boolean;
  }
}

export interface AppDeps {
  engines: EngineRegistry;
  metrics: Metrics;
  logger: Logger;
  keys: ApiKeyStore;
  sessions: SessionStore;
}

export const WS_PROTOCOL = 'gemma-3-api';

/** Picks our own subprotocol (never the one that carries the key) so browsers accept the handshake. */
function selectProtocol(protocols: Set<string>): string | false {
  if (protocols.has(WS_PROTOCOL)) return WS_PROTOCOL;
  for (const p of protocols) if (!isKeyProtocol(p)) return p;
  return false;
}

export async function buildApp(config: Config, deps: AppDeps): Promise<FastifyInstance> {
  // set once protection is registered, before the server listens
  let securityHeaders: Record<string, string> = {};
  let playgroundHeaders: Record<string, string> = {};
  const tls = readTls(config);
  const app = Fastify({
    // HTTPS/WSS when TLS_CERT_FILE and TLS_KEY_FILE are set (src/http/tls.ts); the server type stays node's http.Server for the routes
    ...((tls ? { https: { ...tls, requireHostHeader: false } } : {}) as object),
    loggerInstance: deps.logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'request_id' }),
    genReqId: requestIdGenerator(config.REQUEST_ID_HEADER),
    requestIdHeader: false,
    bodyLimit: config.MAX_BODY_BYTES,
    // ids in paths are at most 128 characters; longer ones reach the route and get its 400
    routerOptions: { maxParamLength: 1024 },
    return503OnClosing: true,
    // receiving a request (slow uploads, slowloris) is bounded by the same deadline as answering it
    requestTimeout: config.REQUEST_TIMEOUT_SECONDS * 1000,
    // Node ignores a request timeout shorter than the headers timeout (60 s) when it is set after the
    // server is built (as Fastify does), and checks it only every 30 s by default
    // requireHostHeader: a request without Host gets the envelope from the onRequest hook (requestShapeError), not Node's bare 400
    http: { headersTimeout: Math.min(60_000, config.REQUEST_TIMEOUT_SECONDS * 1000 || 60_000), connectionsCheckingInterval: 1000, requireHostHeader: false },
    // avvio's plugin timeout also bounds app.close()'s preClose hooks, where WebSockets finish their
    // accepted work: at its default (10 s) a longer drain failed with AVV_ERR_READY_TIMEOUT and
    // exit 1. Draining is bounded by SHUTDOWN_GRACE_SECONDS (main.ts), so this outlasts it.
    pluginTimeout: Math.max(10, config.SHUTDOWN_GRACE_SECONDS + 10) * 1000,
    // refusals before any hook runs (router, Node's HTTP parser) still answer in the envelope
    frameworkErrors: frameworkErrorHandler(config.REQUEST_ID_HEADER, () => securityHeaders),
    clientErrorHandler: clientErrorHandler(config.REQUEST_ID_HEADER, () => securityHeaders, deps.logger as FastifyBaseLogger),
  }).withTypeProvider<ZodTypeProvider>();
  app.decorate('requestTimeoutMs', config.REQUEST_TIMEOUT_SECONDS * 1000);

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  registerErrorHandling(app);
  // compressed request bodies: decoded, the size limit counted on the decoded bytes (src/http/content-encoding.ts)
  registerContentEncoding(app);
  // JSON with a __proto__ / constructor.prototype key: still refused, with the reason (src/http/json-body.ts)
  registerJsonBody(app);

  // Hot path: one callback-style hook each side of the request (async hooks and a separate auth
  // hook cost measurable /health throughput; see bench/health-overhead.ts).
  const requestIdHeader = config.REQUEST_ID_HEADER;
  const keyHeader = config.API_KEY_HEADER_NAME.toLowerCase();
  const isPublic = (request: FastifyRequest) =>
    request.routeOptions.config?.public === true ||
    request.url.startsWith(PLAYGROUND_PREFIX) ||
    (!config.DOCS_REQUIRE_API_KEY && (request.url === DOCS_PREFIX || request.url.startsWith(`${DOCS_PREFIX}/`)));
  const origins = webSocketOriginPolicy(config);
  const clientSecrets = new ClientSecrets((minter) => deps.keys.accepts(minter));
  const authenticator = new Authenticator(deps.keys, keyHeader, new AuthFailureLimiter(config.AUTH_FAILURES_PER_MINUTE), clientSecrets);
  // the tenant of the request's key (src/tenancy.ts), set by the authenticator
  app.decorateRequest('tenant', null);
  app.decorateRequest('keyDigest', null);
  const drain = new SocketDrain();
  // a revoked key's open sockets close with it, its unused ephemeral keys are forgotten (keys reloaded: SIGHUP, API_KEYS_FILE changed)
  deps.keys.onReload(() => {
    clientSecrets.forgetRevoked();
    const closed = drain.revoke((key) => deps.keys.accepts(key));
    if (closed > 0) app.log.info({ closed }, 'sockets of revoked API keys closed');
  });
  /** Routes that accept WebSocket handshakes (filled as they are registered). */
  const websocketRoutes = new Set<string>();
  const httpInFlight = deps.metrics.httpInFlight;
  const sockets = new SocketLimits(config.WS_MAX_STREAMS_PER_KEY, config.WS_MAX_MESSAGES_PER_SECOND, keyHeader);
  app.addHook('onRequest', (request, reply, done) => {
    void reply.header(requestIdHeader, request.id).headers(request.url.startsWith(PLAYGROUND_PREFIX) ? playgroundHeaders : securityHeaders);
    const upgrade = request.headers.upgrade !== undefined;
    if (!upgrade) {
      httpInFlight.inc();
      reply.raw.once('close', () => httpInFlight.dec());
    }
    try {
      const malformed = requestShapeError(request.raw, upgrade && websocketRoutes.has(request.routeOptions.url ?? ''));
      if (malformed) throw malformed;
      // CORS does not cover WebSockets: a browser page from another origin is checked here
      if (upgrade) checkWebSocketOrigin(request, origins);
      const denied = config.API_KEY_ENABLED && !isPublic(request) ? authenticator.check(request) : undefined;
      if (!denied && upgrade) {
        // a WebSocket handshake to an HTTP route would be accepted (101) and closed at once by
        // @fastify/websocket: refuse it with a status instead
        const route = request.routeOptions.url;
        if (route !== undefined && !websocketRoutes.has(route) && request.headers.upgrade?.toLowerCase() === 'websocket') {
          throw new ApiError(400, 'invalid_request_error', `${route} is not a WebSocket route; the WebSockets are ${[...websocketRoutes].join(', ')}.`, { code: 'not_a_websocket_route' });
        }
        sockets.admit(request);
      }
      done(denied);
    } catch (error) {
      done(error as Error);
    }
  });
  const protection = await registerProtection(app, config, keyHeader);
  ({ securityHeaders, playgroundHeaders } = protection);
  app.addHook('onClose', async () => protection.close());

  app.addHook('onResponse', (request, reply, done) => {
    // A refused WebSocket handshake: the response went out on the raw upgrade socket, which the
    // HTTP server no longer tracks; end it so no half-open socket outlives the refusal.
    if (reply.statusCode !== 101 && request.headers.upgrade !== undefined) request.raw.socket?.end();
    const route = request.routeOptions.url ?? 'unmatched';
    const latency = reply.elapsedTime;
    deps.metrics.observeHttp(request.method, route, reply.statusCode, latency / 1000);
    request.log.info(
      {
        method: request.method,
        route,
        // the raw URL only when it says more than the route (params, query), secrets redacted
        url: request.url === route ? undefined : redactUrl(request.url),
        status: reply.statusCode,
        latency_ms: Math.round(latency * 100) / 100,
      },
      'request completed',
    );
    done();
  });

  const wsDocs: WsDocs = new Map();
  await registerOpenApi(app, VERSION, wsDocs);
  // every WebSocket is counted and paced (registered before the plugin, which takes the handler over)
  app.addHook('onRoute', (route) => {
    if (!route.websocket) return;
    websocketRoutes.add(route.url);
    const handler = route.handler as unknown as (this: unknown, socket: WebSocket, request: FastifyRequest) => unknown;
    const open = deps.metrics.websocketConnections.labels({ route: route.url });
    route.handler = function (this: unknown, socket: WebSocket, request: FastifyRequest) {
      open.inc();
      socket.once('close', () => open.dec());
      sockets.pace(socket, request);
      return handler.call(this, socket, request);
    } as unknown as typeof route.handler;
  });
  await app.register(websocket, {
    options: { maxPayload: config.WS_MAX_MESSAGE_BYTES, handleProtocols: selectProtocol },
    // on shutdown each socket finishes the work it accepted, then closes with 1001 (within the grace period)
    preClose: async function (this: FastifyInstance) {
      await drain.closeAll(Math.max(0, config.SHUTDOWN_GRACE_SECONDS * 1000 - 3000), this.websocketServer.clients);
      this.websocketServer.close();
    },
    // a client breaking the protocol (an oversized frame: closed with 1009, bad framing) is the
    // client's error, logged as such; anything else is ours
    errorHandler: (error, socket, request) => {
      const code = (error as { code?: string }).code ?? '';
      if (code.startsWith('WS_ERR_')) request.log.info({ code, reason: error.message }, 'websocket closed: client protocol error');
      else request.log.error({ err: error }, 'websocket handler failed');
      socket.terminate();
    },
  });

  configureDecodePool({ threads: config.DECODE_THREADS, queue: config.DECODE_QUEUE_SIZE, maxAudioSeconds: Math.max(config.MAX_AUDIO_SECONDS, config.JOB_MAX_AUDIO_SECONDS) });
  const transcription = new TranscriptionService(config, deps.engines, deps.metrics);
  const jobs: Jobs = createJobs(config, { transcription, metrics: deps.metrics, logger: deps.logger });
  // queued and running jobs stop at their window's end and stay for another worker (or this one's next start)
  app.addHook('onClose', async () => jobs.service.close());
  const describeJobs = () => {
    const { queue, durable, worker } = jobs.describe();
    return { queue, durable, worker };
  };
  // readiness details (addresses, library messages) only for key holders, or everyone with keys off
  await app.register(healthRoutes, { engines: deps.engines, sessions: deps.sessions, showDetails: (request) => !config.API_KEY_ENABLED || authenticator.identifies(request), jobs: describeJobs });
  await app.register(metricsRoutes, { metrics: deps.metrics, requireKey: config.METRICS_REQUIRE_API_KEY });
  const generation = new GenerationService(config, deps.engines, deps.metrics);
  await app.register(generateRoutes, { generation });
  await app.register(chatCompletionRoutes, { generation });
  await app.register(completionRoutes, { generation });
  const responses = new ResponseStore(deps.sessions, config);
  await app.register(responseRoutes, { generation, responses });
  await app.register(modelRoutes, { engines: deps.engines });
  const audioHeld = deps.metrics.gauge('audio_decoded_seconds_in_flight', 'Seconds of decoded audio held by HTTP requests (bounded by MAX_AUDIO_IN_FLIGHT_SECONDS).');
  const audioBudget = new AudioBudget(config.MAX_AUDIO_IN_FLIGHT_SECONDS ?? 2 * config.MAX_AUDIO_SECONDS, (held) => audioHeld.set(held));
  await app.register(speechToTextRoutes, {
    transcription,
    maxUploadBytes: config.MAX_UPLOAD_BYTES,
    maxAudioSeconds: config.MAX_AUDIO_SECONDS,
    audioBudget,
  });
  await app.register(jobRoutes, { jobs: jobs.service, webhooks: jobs.webhooks, maxUploadBytes: config.JOB_MAX_UPLOAD_BYTES, maxJsonUploadBytes: config.MAX_UPLOAD_BYTES, describe: describeJobs, sttModelId: (name) => transcription.modelId(name) });
  const synthesis = new SynthesisService(config, deps.engines, deps.metrics, probeFfmpeg(config.FFMPEG_PATH));
  await app.register(textToSpeechRoutes, { synthesis, defaultFormat: config.OPENAUDIO_DEFAULT_FORMAT, maxUploadBytes: config.MAX_UPLOAD_BYTES });
  await app.register(voiceRoutes, { synthesis, maxUploadBytes: config.MAX_UPLOAD_BYTES });
  await app.register(sttSocketRoutes, { transcription, config, wsDocs, drain });
  await app.register(ttsSocketRoutes, { synthesis, wsDocs, drain, defaults: { format: 'pcm', sampleRate: config.DEFAULT_AUDIO_SAMPLE_RATE } });
  const dialogue = new DialogueService(config, { transcription, generation, synthesis, sessions: deps.sessions, metrics: deps.metrics, prompts: loadPrompts(config) });
  await app.register(dialogueRoutes, { dialogue, maxUploadBytes: config.MAX_UPLOAD_BYTES, maxAudioSeconds: config.MAX_AUDIO_SECONDS, audioBudget });
  await app.register(dialogueSocketRoutes, { dialogue, transcription, config, wsDocs, drain });
  await app.register(realtimeSocketRoutes, { dialogue, transcription, config, wsDocs, drain, clientSecrets });
  await app.register(realtimeClientSecretRoutes, { secrets: clientSecrets, config, checkModels: (model, sttModel) => dialogue.checkModels(model, sttModel) });
  await registerDocsUi(app);
  await registerPlayground(app, config.PLAYGROUND_DIR);

  return app;
}
