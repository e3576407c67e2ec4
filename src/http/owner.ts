/**
 * Who owns a stored object (a stored /v1/responses answer): the SHA-256 digest of the API key that
 * created it, so that another key cannot read, list or delete it (it gets the 404 of an unknown
 * id). The key itself is never stored. null when API keys are off: everything belongs to everyone.
 * Self-contained on purpose, so other stored things (dialogue sessions) can share it.
 */
import { createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { presentedKey } from './auth.ts';

export type Owner = string | null;

export function ownerOf(request: FastifyRequest, keys: { enabled: boolean; headerName: string }): Owner {
  if (!keys.enabled) return null;
  const key = presentedKey(request, keys.headerName.toLowerCase());
  // the onRequest hook has already refused a request without a valid key
  return key ? createHash('sha256').update(key, 'utf8').digest('hex') : null;
}
