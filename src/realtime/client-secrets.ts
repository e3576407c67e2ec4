/**
 * Ephemeral client keys for /v1/realtime (`POST /v1/realtime/client_secrets`): a server holding a
 * real key mints a short-lived `ek_…` for a browser, which opens one realtime connection with it
 * (as its API key, in any of the usual places) and never sees the real key. A secret is valid
 * until its expiry (REALTIME_CLIENT_SECRET_TTL_SECONDS, or the request's own shorter or longer
 * one) and for one connection only; the connection belongs to the tenant of the key that minted
 * it and starts with the session configuration given at minting. Kept in this replica's memory,
 * as SHA-256 digests (the value itself is only in the minting response, never logged): behind a
 * load balancer, the browser must reach the replica that minted it. A secret is only as good as
 * the key that minted it: once that key is revoked (API_KEYS reloaded), its unused secrets open
 * nothing. One tenant may hold at most MAX_PER_TENANT unused secrets, so it cannot use up the
 * replica's MAX_OUTSTANDING for everyone.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { ApiError } from '../errors.ts';
import type { SessionUpdate } from './session.ts';

export const EPHEMERAL_PREFIX = 'ek_';
/** Outstanding secrets per replica: more is a 429 (clients should mint them when they need one). */
const MAX_OUTSTANDING = 10_000;
/** Outstanding secrets per tenant (a browser needs one per connection it is about to open). */
export const MAX_PER_TENANT = 1_000;

interface Grant {
  tenant: string | null;
  /** The SHA-256 digest of the key that minted it (keys on): it must still be accepted when the secret is used. */
  minter: Buffer | undefined;
  expiresAt: number;
  session: SessionUpdate | undefined;
}

const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest('hex');

export class ClientSecrets {
  private readonly grants = new Map<string, Grant>();
  /** What a connection authenticated by a secret was granted (read by the socket). */
  private readonly granted = new WeakMap<FastifyRequest, Grant>();

  /** `accepted` tells whether a key (by its digest) is still accepted: a revoked key's secrets open nothing. */
  constructor(private readonly accepted: (minter: Buffer) => boolean = () => true) {}

  mint(tenant: string | null, minter: Buffer | undefined, ttlSeconds: number, session: SessionUpdate | undefined): { value: string; expiresAt: number } {
    // one pass: expired secrets go; the tenant's count and when a place frees up come with it
    const now = Date.now();
    let mine = 0;
    let firstMine = Infinity;
    let firstAny = Infinity;
    for (const [key, grant] of this.grants) {
      if (grant.expiresAt <= now) this.grants.delete(key);
      else {
        firstAny = Math.min(firstAny, grant.expiresAt);
        if (grant.tenant === tenant) {
          mine++;
          firstMine = Math.min(firstMine, grant.expiresAt);
        }
      }
    }
    // Retry-After: until a secret of the cap in question expires and frees a place
    const refuse = (what: string, freeAt: number) => new ApiError(429, 'rate_limit_error', `Too many unused client secrets outstanding (${what}): use or let some expire first.`, { code: 'too_many_client_secrets', headers: { 'Retry-After': String(Math.max(1, Math.ceil((freeAt - now) / 1000))) } });
    if (mine >= MAX_PER_TENANT) throw refuse(`${MAX_PER_TENANT} for this key`, firstMine);
    if (this.grants.size >= MAX_OUTSTANDING) throw refuse(`${MAX_OUTSTANDING} on this server`, firstAny);
    const value = `${EPHEMERAL_PREFIX}${randomBytes(24).toString('base64url')}`;
    this.grants.set(digest(value), { tenant, minter, expiresAt: now + ttlSeconds * 1000, session });
    return { value, expiresAt: Math.floor(now / 1000) + ttlSeconds };
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
    if (grant.minter && !this.accepted(grant.minter)) return false; // its key was revoked since
    request.tenant = grant.tenant;
    request.keyDigest = grant.minter ?? null; // the connection stands or falls with the minting key
    this.granted.set(request, grant);
    return true;
  }

  /**
   * Forgets the unused secrets of keys `accepted` no longer accepts (called after every key
   * reload): a revoked key's secrets are gone for good, not back if the key is listed again, and
   * no longer count against its cap.
   */
  forgetRevoked(): void {
    for (const [key, grant] of this.grants) if (grant.minter && !this.accepted(grant.minter)) this.grants.delete(key);
  }

  /** The session configuration granted with the secret that opened this connection, if any. */
  sessionFor(request: FastifyRequest): SessionUpdate | undefined {
    return this.granted.get(request)?.session;
  }
}

/** Whether a request may use an ephemeral key: only the realtime WebSocket handshake. */
export function isRealtimeHandshake(request: FastifyRequest): boolean {
  return request.headers.upgrade?.toLowerCase() === 'websocket' && (request.url === '/v1/realtime' || request.url.startsWith('/v1/realtime?'));
}
