/**
 * API keys. Accepted from the configured header or `Authorization: Bearer <key>` (the OpenAI
 * SDKs), and on WebSocket handshakes only also from `?api_key=` or a `api_key.<key>` (ours) or
 * `openai-insecure-api-key.<key>` (OpenAI Realtime clients) subprotocol (what a browser can send). Keys are compared as SHA-256 digests with a constant-time comparison
 * against every stored key. SIGHUP (or `reload()`) re-reads API_KEYS from `.env`/environment and
 * API_KEYS_FILE, and the operator keys (ADMIN_API_KEYS, ADMIN_API_KEYS_FILE) the same way. An
 * operator key is a valid key everywhere; routes marked `config.operator` accept only operator keys.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { FastifyRequest } from 'fastify';
import { ApiError } from '../errors.ts';
import { tenantFromDigest } from '../tenancy.ts';
import type { AuthFailureLimiter } from './auth-failures.ts';
import { EPHEMERAL_PREFIX, isRealtimeHandshake, type ClientSecrets } from '../realtime/client-secrets.ts';

export const WS_KEY_PROTOCOL_PREFIX = 'api_key.';
/** The browser form of OpenAI's Realtime clients: `Sec-WebSocket-Protocol: realtime, openai-insecure-api-key.<key>`. */
export const OPENAI_KEY_PROTOCOL_PREFIX = 'openai-insecure-api-key.';

/** A subprotocol that carries a key (never selected as the socket's protocol). */
export function isKeyProtocol(protocol: string): boolean {
  return protocol.startsWith(WS_KEY_PROTOCOL_PREFIX) || protocol.startsWith(OPENAI_KEY_PROTOCOL_PREFIX);
}

const digest = (key: string) => createHash('sha256').update(key, 'utf8').digest();

/** Whether `d` is one of `stored`, compared in constant time against every one (no early exit). */
function includesDigest(stored: Buffer[], d: Buffer): boolean {
  let found = false;
  for (const s of stored) found = timingSafeEqual(s, d) || found;
  return found;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The SHA-256 digest of the request's verified API key (null: keys off, public route, ephemeral key). */
    keyDigest: Buffer | null;
  }
}

export function readKeysFile(file: string): string[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .map((line) => line.replace(/#.*/, '').trim())
    .filter(Boolean);
}

export class ApiKeyStore {
  private digests: Buffer[] = [];
  private adminDigests: Buffer[] = [];

  /** `source` returns the current keys, `adminSource` the operator keys; both called now and on every reload. */
  constructor(
    private readonly source: () => string[],
    private readonly adminSource: () => string[] = () => [],
  ) {
    this.reload();
  }

  /** Re-reads the keys; returns how many are accepted now. Keeps the old keys if a source throws. */
  reload(): number {
    // both read before either is replaced: a half-applied rotation would keep a revoked operator key
    const admin = [...new Set(this.adminSource())];
    const keys = [...new Set([...this.source(), ...admin])];
    this.digests = keys.map(digest);
    this.adminDigests = admin.map(digest);
    for (const listener of this.reloaded) listener();
    return this.digests.length;
  }

  private readonly reloaded: (() => void)[] = [];

  /** Calls `listener` after every reload (what holds a key beyond one request checks it again). */
  onReload(listener: () => void): void {
    this.reloaded.push(listener);
  }

  get size(): number {
    return this.digests.length;
  }

  verify(candidate: string | undefined): boolean {
    return this.match(candidate) !== undefined;
  }

  /** The candidate's SHA-256 digest when it is a stored key, else undefined. */
  match(candidate: string | undefined): Buffer | undefined {
    if (!candidate) return undefined;
    const d = digest(candidate);
    return includesDigest(this.digests, d) ? d : undefined;
  }

  /** Whether a key's digest is among the keys accepted now (an ephemeral key's minter: still valid?). */
  accepts(keyDigest: Buffer): boolean {
    return includesDigest(this.digests, keyDigest);
  }

  /** Whether a matched key's digest (from `match`) is an operator key. */
  isAdmin(matched: Buffer): boolean {
    return includesDigest(this.adminDigests, matched);
  }
}

/** Node dispatched the request as an upgrade (`Connection: upgrade` and an `Upgrade` header), not as a plain request. */
export function isUpgrade(raw: IncomingMessage): boolean {
  return (raw as IncomingMessage & { upgrade?: boolean }).upgrade === true;
}

/** The key a request carries, if any, in the documented places. */
export function presentedKey(request: FastifyRequest, headerName: string): string | undefined {
  const header = request.headers[headerName];
  if (typeof header === 'string' && header) return header.trim();
  const authorization = request.headers.authorization;
  if (authorization?.toLowerCase().startsWith('bearer ')) return authorization.slice(7).trim();
  // only a real handshake (Node dispatched it as an upgrade): a plain request with an `Upgrade`
  // header must not be able to carry its key in a URL that proxies and browsers log
  if (isUpgrade(request.raw) && request.headers.upgrade?.toLowerCase() === 'websocket') {
    const query = request.query as Record<string, unknown> | undefined;
    if (typeof query?.api_key === 'string') return query.api_key;
    const protocols = request.headers['sec-websocket-protocol']?.split(',').map((p) => p.trim()) ?? [];
    const fromProtocol = protocols.find(isKeyProtocol);
    if (fromProtocol) return fromProtocol.slice(fromProtocol.startsWith(WS_KEY_PROTOCOL_PREFIX) ? WS_KEY_PROTOCOL_PREFIX.length : OPENAI_KEY_PROTOCOL_PREFIX.length);
  }
  return undefined;
}

/** The 403 for a non-operator key on an operator route (model load/unload). */
function operatorOnly(request: FastifyRequest): ApiError {
  return new ApiError(403, 'permission_error', `${request.method} ${request.routeOptions.url ?? request.url} is for operators: send a key listed in ADMIN_API_KEYS or ADMIN_API_KEYS_FILE.`, { code: 'permission_denied' });
}

/**
 * Checks requests' keys: sets `request.tenant` for a good key, counts a wrong one against the
 * client address, and refuses every keyed request from an address past AUTH_FAILURES_PER_MINUTE.
 */
export class Authenticator {
  constructor(
    private readonly store: ApiKeyStore,
    private readonly headerName: string,
    private readonly failures: AuthFailureLimiter,
    private readonly clientSecrets?: ClientSecrets,
  ) {}

  /** For a route that needs a key: the 401 (or the 429 of a blocked address); undefined when the key is good. */
  check(request: FastifyRequest): ApiError | undefined {
    const blocked = this.failures.blocked(request.ip);
    if (blocked) return blocked;
    const key = presentedKey(request, this.headerName);
    const matched = this.store.match(key);
    if (matched) {
      request.tenant = tenantFromDigest(matched);
      request.keyDigest = matched;
      // a tenant's key on an operator route: authenticated, not allowed (not a failed guess)
      if (request.routeOptions.config?.operator === true && !this.store.isAdmin(matched)) return operatorOnly(request);
      return undefined;
    }
    // an ephemeral key (POST /v1/realtime/client_secrets) opens one realtime connection, nothing else
    if (key?.startsWith(EPHEMERAL_PREFIX) && this.clientSecrets && isRealtimeHandshake(request) && isUpgrade(request.raw) && this.clientSecrets.consume(key, request)) return undefined;
    if (key) this.failures.record(request.ip);
    return new ApiError(401, 'authentication_error', `Missing or invalid API key. Send it in the ${this.headerName} header or as "Authorization: Bearer <key>".`, {
      code: 'invalid_api_key',
      headers: { 'WWW-Authenticate': 'Bearer' },
    });
  }

  /**
   * For a public route that shows more to key holders (readiness details): whether the request
   * carries a good key. A wrong key counts as a failure (else the route would be a free oracle
   * for guessing keys), and a blocked address is treated as having none.
   */
  identifies(request: FastifyRequest): boolean {
    if (this.failures.blocked(request.ip)) return false;
    const key = presentedKey(request, this.headerName);
    if (this.store.verify(key)) return true;
    if (key) this.failures.record(request.ip);
    return false;
  }
}
