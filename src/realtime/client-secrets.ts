/**
 * Ephemeral client keys for /v1/realtime (`POST /v1/realtime/client_secrets`): a server holding a
 * real key mints a short-lived `ek_…` for a browser, which opens one realtime connection with it
 * (as its API key, in any of the usual places) and never sees the real key. A secret is valid
 * until its expiry (REALTIME_CLIENT_SECRET_TTL_SECONDS, or the request's own shorter or longer
 * one) and for one connection only; the connection belongs to the tenant of the key that minted
 * it and starts with the session configuration given at minting. Kept in this replica's memory,
 * as SHA-256 digests (the value itself is only in the minting response, never logged): behind a
 * load balancer, the browser must reach the replica that minted it.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { ApiError } from '../errors.ts';
import type { SessionUpdate } from './session.ts';

export const EPHEMERAL_PREFIX = 'ek_';
/** Outstanding secrets per replica: more is a 429 (clients should mint them when they need one). */
const MAX_OUTSTANDING = 10_000;

interface Grant {
  tenant: string | null;
  expiresAt: number;
  session: SessionUpdate | undefined;
}

const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest('hex');

export class ClientSecrets {
  private readonly grants = new Map<string, Grant>();
  /** What a connection authenticated by a secret was granted (read by the socket). */
  private readonly granted = new WeakMap<FastifyRequest, Grant>();

  mint(tenant: string | null, ttlSeconds: number, session: SessionUpdate | undefined): { value: string; expiresAt: number } {
    this.sweep();
    if (this.grants.size >= MAX_OUTSTANDING) throw new ApiError(429, 'rate_limit_error', `Too many unused client secrets outstanding (${MAX_OUTSTANDING}): let some expire.`, { code: 'too_many_client_secrets' });
    const value = `${EPHEMERAL_PREFIX}${randomBytes(24).toString('base64url')}`;
    const expiresAt = Math.floor(Date.now() / 1000) + ttlSeconds;
    this.grants.set(digest(value), { tenant, expiresAt: Date.now() + ttlSeconds * 1000, session });
    return { value, expiresAt };
  }

  /**
   * Authenticates a realtime handshake with a secret, once: true when it is valid (the request's
   * tenant is then the minting key's); false when unknown, used or expired.
   */
  consume(value: string, request: FastifyRequest): boolean {
    const key = digest(value);
    const grant = this.grants.get(key);
    if (!grant) return false;
    this.grants.delete(key); // once, whatever the outcome
    if (grant.expiresAt <= Date.now()) return false;
    request.tenant = grant.tenant;
    this.granted.set(request, grant);
    return true;
  }

  /** The session configuration granted with the secret that opened this connection, if any. */
  sessionFor(request: FastifyRequest): SessionUpdate | undefined {
    return this.granted.get(request)?.session;
  }

  private sweep(): void {
    const now = Date.now();
    for (const [key, grant] of this.grants) if (grant.expiresAt <= now) this.grants.delete(key);
  }
}

/** Whether a request may use an ephemeral key: only the realtime WebSocket handshake. */
export function isRealtimeHandshake(request: FastifyRequest): boolean {
  return request.headers.upgrade?.toLowerCase() === 'websocket' && (request.url === '/v1/realtime' || request.url.startsWith('/v1/realtime?'));
}
