/** POST /v1/realtime/client_secrets: short-lived `ek_…` keys for one /v1/realtime connection each (src/realtime/client-secrets.ts). */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Config } from '../../config.ts';
import { errorEnvelopeSchema } from '../../errors.ts';
import type { ClientSecrets } from '../../realtime/client-secrets.ts';
import { applyUpdate, defaultSession, sessionUpdate, sessionView } from '../../realtime/session.ts';
import { tenantOf } from '../../tenancy.ts';

const body = z
  .object({
    expires_after: z
      .object({ anchor: z.literal('created_at').optional(), seconds: z.number().int().min(1).max(7200).describe('Lifetime (default REALTIME_CLIENT_SECRET_TTL_SECONDS).') })
      .strict()
      .optional(),
    session: sessionUpdate.optional().describe('The session the connection starts with (as session.update would set it).'),
  })
  .strict();

const answer = z
  .object({
    value: z.string().describe('The ephemeral key (`ek_…`): one /v1/realtime connection, until expires_at.'),
    expires_at: z.number().int().describe('Unix seconds.'),
    session: z.record(z.string(), z.unknown()),
  })
  .meta({ id: 'RealtimeClientSecret' });

export const realtimeClientSecretRoutes: FastifyPluginAsyncZod<{ secrets: ClientSecrets; config: Config; checkModels: (model?: string, sttModel?: string) => void }> = async (app, { secrets, config, checkModels }) => {
  app.post(
    '/v1/realtime/client_secrets',
    {
      schema: {
        tags: ['openai'],
        summary: 'Mint an ephemeral key for /v1/realtime (OpenAI-compatible)',
        description:
          'For browsers: a server holding an API key mints an `ek_…` key; the browser opens one /v1/realtime connection with it (e.g. the subprotocol `openai-insecure-api-key.ek_…`). Valid once, until `expires_at` (REALTIME_CLIENT_SECRET_TTL_SECONDS unless `expires_after.seconds`), for this replica; the connection belongs to the minting key and starts with `session`. The value is never logged. A `session` naming an unknown model (with a models file) is refused with 404 `model_not_found`. A revoked key\'s unused secrets open nothing; at most 1,000 unused secrets per key (10,000 per replica): more is 429 `too_many_client_secrets` with Retry-After.',
        body: body.optional(),
        response: { 200: answer, 400: errorEnvelopeSchema, 404: errorEnvelopeSchema, 429: errorEnvelopeSchema },
      },
    },
    async (request) => {
      const ttl = request.body?.expires_after?.seconds ?? config.REALTIME_CLIENT_SECRET_TTL_SECONDS;
      const session = request.body?.session;
      const effective = session ? applyUpdate(defaultSession(config), session, config) : defaultSession(config);
      // a session naming an unknown model would only fail at connection: refuse it now (404 model_not_found)
      checkModels(effective.model, effective.transcription?.model);
      const { value, expiresAt } = secrets.mint(tenantOf(request) ?? null, request.keyDigest ?? undefined, ttl, session);
      return { value, expires_at: expiresAt, session: sessionView(effective) };
    },
  );
};
