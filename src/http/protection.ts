/**
 * Protection for a service on a network: CORS for the browser origins in CORS_ORIGINS (and a
 * check on WebSocket handshakes, which CORS does not cover, against those and PUBLIC_ORIGINS), security headers (helmet's,
 * computed once and set on every answer; a content security policy for the playground), and per-key rate limiting (RATE_LIMIT_PER_MINUTE,
 * in Redis when REDIS_URL is set so every replica counts together).
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import cors from '@fastify/cors';
import type { IncomingMessage, ServerResponse } from 'node:http';
import helmet from 'helmet';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Redis } from 'ioredis';
import type { Config } from '../config.ts';
import { ApiError } from '../errors.ts';
import { presentedKey } from './auth.ts';

export function allowedOrigins(config: Config): '*' | string[] {
  const list = (config.CORS_ORIGINS ?? '').split(',').map((o) => o.trim().replace(/\/+$/, '')).filter(Boolean);
  return list.includes('*') ? '*' : list;
}

/** Who may open WebSockets from a browser page: CORS_ORIGINS (`*`: anyone) and PUBLIC_ORIGINS. */
export interface WebSocketOriginPolicy {
  any: boolean;
  /** Normalized origins (`new URL(o).origin`: lower-case host, default port dropped). */
  allowed: Set<string>;
}

const originOf = (value: string): string | undefined => {
  try {
    return new URL(value).origin;
  } catch {
    return undefined;
  }
};

export function webSocketOriginPolicy(config: Config): WebSocketOriginPolicy {
  const cors = allowedOrigins(config);
  const publicOrigins = (config.PUBLIC_ORIGINS ?? '').split(',').map((o) => o.trim()).filter(Boolean);
  const listed = [...(cors === '*' ? [] : cors), ...publicOrigins].map(originOf).filter((o): o is string => o !== undefined);
  return { any: cors === '*', allowed: new Set(listed) };
}

/**
 * A page served by this very host: the same host and port as the request, under a name DNS cannot
 * rebind — an IP address or `localhost`. A page on a domain name may have been served by anyone
 * whose DNS now points at this address (DNS rebinding), so the Host header proves nothing there.
 */
function sameLoopbackOrAddressOrigin(origin: URL, host: string | undefined): boolean {
  if (!host || origin.host !== host.toLowerCase()) return false;
  const name = origin.hostname.replace(/^\[|\]$/g, '');
  return isIP(name) !== 0 || name === 'localhost';
}

/**
 * A WebSocket handshake from a browser page (CORS does not cover WebSockets): allowed from the
 * origins in CORS_ORIGINS and PUBLIC_ORIGINS, and from the same IP-address or localhost origin (the
 * served playground). Non-browser clients send no Origin.
 */
export function checkWebSocketOrigin(request: FastifyRequest, policy: WebSocketOriginPolicy): void {
  const origin = request.headers.origin;
  if (!origin || policy.any) return;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    throw new ApiError(403, 'permission_error', `Origin "${origin}" is not a valid origin.`, { code: 'origin_not_allowed' });
  }
  if (policy.allowed.has(url.origin) || sameLoopbackOrAddressOrigin(url, request.headers.host)) return;
  throw new ApiError(403, 'permission_error', `Origin ${origin} may not open WebSockets here; add it to PUBLIC_ORIGINS (the service's own address) or CORS_ORIGINS.`, { code: 'origin_not_allowed' });
}

const PLAYGROUND_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src *; frame-ancestors 'none'; base-uri 'self'; form-action 'self'";

/**
 * The headers a helmet middleware sets, captured once. Its headers do not depend on the request,
 * and building them per request (as @fastify/helmet does: it constructs helmet anew for every
 * request) cost ~27 µs of a /health request's ~73 µs here (npm run bench:health).
 */
export function staticHeaders(middleware: (req: IncomingMessage, res: ServerResponse, next: (error?: unknown) => void) => void): Record<string, string> {
  const headers: Record<string, string> = {};
  const response = {
    setHeader: (name: string, value: string | number | string[]) => void (headers[name] = Array.isArray(value) ? value.join(', ') : String(value)),
    removeHeader: (name: string) => void delete headers[name],
  };
  middleware({ headers: {} } as IncomingMessage, response as unknown as ServerResponse, (error) => {
    if (error) throw error;
  });
  return headers;
}

/** Who a request counts against for limits: its API key (hashed, so the key itself is never stored), else its client address. */
export function clientIdentity(request: FastifyRequest, keyHeader: string): string {
  const key = presentedKey(request, keyHeader);
  return key ? `key:${createHash('sha256').update(key).digest('hex').slice(0, 32)}` : `ip:${request.ip}`;
}

export async function registerProtection(app: FastifyInstance, config: Config, keyHeader: string): Promise<{ close: () => Promise<void>; securityHeaders: Record<string, string>; playgroundHeaders: Record<string, string> }> {
  const origins = allowedOrigins(config);
  if (origins === '*' || origins.length > 0) {
    await app.register(cors, { origin: origins === '*' ? true : origins, exposedHeaders: ['X-Request-ID', 'X-TTS-Engine', 'X-STT-Engine', 'X-Sample-Rate', 'X-Session-ID', 'Retry-After'], maxAge: 600 });
  }
  // JSON and audio answers need no content security policy; the playground gets one
  const securityHeaders = staticHeaders(helmet({ contentSecurityPolicy: false, crossOriginResourcePolicy: { policy: 'cross-origin' }, crossOriginEmbedderPolicy: false }));
  const playgroundHeaders = { ...securityHeaders, 'Content-Security-Policy': PLAYGROUND_CSP };

  let redis: Redis | undefined;
  if (config.RATE_LIMIT_PER_MINUTE > 0) {
    if (config.REDIS_URL) {
      redis = new Redis(config.REDIS_URL, { enableOfflineQueue: false, maxRetriesPerRequest: 0, connectTimeout: 2000, commandTimeout: 1000 });
      // while Redis is down requests are admitted uncounted (skipOnError); say so once per outage
      let down = false;
      redis.on('error', (error: Error) => {
        if (!down) app.log.warn({ reason: error.message }, 'rate limiter: Redis unavailable; requests are not counted until it is back');
        down = true;
      });
      redis.on('ready', () => {
        if (down) app.log.info('rate limiter: Redis reachable again');
        down = false;
      });
    }
    await app.register(rateLimit, {
      max: config.RATE_LIMIT_PER_MINUTE,
      timeWindow: 60_000,
      ...(redis ? { redis, nameSpace: 'gemma-3-api:ratelimit:', skipOnError: true } : {}),
      // health and metrics stay reachable for probes and scrapers
      allowList: (request) => request.url === '/health' || request.url.startsWith('/health/') || request.url === '/metrics',
      // per key (hashed: the key itself never becomes a Redis key), else per client address
      keyGenerator: (request) => clientIdentity(request, keyHeader),
      errorResponseBuilder: (_request, context) =>
        new ApiError(429, 'rate_limit_error', `Rate limit exceeded: ${context.max} requests per minute (RATE_LIMIT_PER_MINUTE). Retry after ${Math.ceil(context.ttl / 1000)} s.`, {
          code: 'rate_limited',
          headers: { 'Retry-After': String(Math.ceil(context.ttl / 1000)) },
        }),
    });
  }
  return { close: async () => void redis?.disconnect(), securityHeaders, playgroundHeaders };
}
