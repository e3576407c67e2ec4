/**
 * Tenancy: with API keys on, what a client stores (dialogue sessions; any later stored object)
 * belongs to the key that created it, and another key sees it as absent (404). The tenant id is
 * derived from the SHA-256 digest of the key (the first 128 bits, hex) — never the key itself — and
 * set on the request when its key is verified (src/http/auth.ts). Stores scope ids with `scopedId`,
 * so one tenant's `demo` and another's `demo` are different objects: nothing reveals that the other
 * exists. With keys off there is one shared space (tenant undefined, ids unchanged). A rotated key
 * is a new tenant: what the old key stored is no longer reachable through the new one.
 */
import type { FastifyRequest } from 'fastify';

declare module 'fastify' {
  interface FastifyRequest {
    /** The tenant id of the request's verified API key; null with keys off or on public routes. */
    tenant: string | null;
  }
}

/** Who owns a stored record (a /v1/responses answer): a tenant id, or null with keys off. */
export type Owner = string | null;

/** The tenant id of a key's SHA-256 digest. */
export function tenantFromDigest(digest: Buffer): string {
  return digest.toString('hex', 0, 16);
}

/** The request's tenant (undefined: keys are off, one shared space). */
export function tenantOf(request: FastifyRequest): string | undefined {
  return request.tenant ?? undefined;
}

/**
 * The storage id of `id` in `tenant`'s space. `/` is never part of a client id (ids are checked
 * against patterns without it), so a scoped id cannot be forged as an unscoped one.
 */
export function scopedId(tenant: string | undefined, id: string): string {
  return tenant === undefined ? id : `${tenant}/${id}`;
}
