/**
 * API keys. Accepted from the configured header or `Authorization: Bearer <key>` (the OpenAI
 * SDKs), and on WebSocket handshakes also from `?api_key=` or a `api_key.<key>` subprotocol (what a
 * browser can send). Keys are compared as SHA-256 digests with a constant-time comparison against
 * every stored key. SIGHUP (or `reload()`) re-reads API_KEYS from `.env`/environment and API_KEYS_FILE.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import type { FastifyRequest } from 'fastify';
import { ApiError } from '../errors.ts';

export const WS_KEY_PROTOCOL_PREFIX = 'api_key.';

const digest = (key: string) => createHash('sha256').update(key, 'utf8').digest();

export function readKeysFile(file: string): string[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .map((line) => line.replace(/#.*/, '').trim())
    .filter(Boolean);
}

export class ApiKeyStore {
  private digests: Buffer[] = [];

  /** `source` returns the current keys; called now and on every reload. */
  constructor(private readonly source: () => string[]) {
    this.reload();
  }

  /** Re-reads the keys; returns how many are accepted now. Keeps the old keys if the source throws. */
  reload(): number {
    const keys = [...new Set(this.source())];
    this.digests = keys.map(digest);
    return this.digests.length;
  }

  get size(): number {
    return this.digests.length;
  }

  verify(candidate: string | undefined): boolean {
    if (!candidate) return false;
    const d = digest(candidate);
    let match = false;
    for (const stored of this.digests) match = timingSafeEqual(stored, d) || match; // no early exit
    return match;
  }
}

/** The key a request carries, if any, in the documented places. */
export function presentedKey(request: FastifyRequest, headerName: string): string | undefined {
  const header = request.headers[headerName];
  if (typeof header === 'string' && header) return header.trim();
  const authorization = request.headers.authorization;
  if (authorization?.toLowerCase().startsWith('bearer ')) return authorization.slice(7).trim();
  if (request.headers.upgrade?.toLowerCase() === 'websocket') {
    const query = request.query as Record<string, unknown> | undefined;
    if (typeof query?.api_key === 'string') return query.api_key;
    const protocols = request.headers['sec-websocket-protocol']?.split(',').map((p) => p.trim()) ?? [];
    const fromProtocol = protocols.find((p) => p.startsWith(WS_KEY_PROTOCOL_PREFIX));
    if (fromProtocol) return fromProtocol.slice(WS_KEY_PROTOCOL_PREFIX.length);
  }
  return undefined;
}

/** The 401 for a request without a valid key; undefined when the key is good. */
export function authenticate(request: FastifyRequest, store: ApiKeyStore, headerName: string): ApiError | undefined {
  if (store.verify(presentedKey(request, headerName))) return undefined;
  return new ApiError(401, 'authentication_error', `Missing or invalid API key. Send it in the ${headerName} header or as "Authorization: Bearer <key>".`, {
    code: 'invalid_api_key',
    headers: { 'WWW-Authenticate': 'Bearer' },
  });
}
