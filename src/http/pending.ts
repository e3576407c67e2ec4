/**
 * Routes whose capability has no service in this build yet (speech-to-text, text-to-speech,
 * dialogue). They exist so clients and the contract see them, and answer the 503 envelope naming
 * the engine state until their issue lands. Each is replaced by its real route module.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { EngineRegistry } from '../engines/registry.ts';
import type { Capability } from '../engines/types.ts';
import { ApiError, errorEnvelopeSchema } from '../errors.ts';
import type { WsDocs } from './ws-docs.ts';

interface PendingRoute {
  url: string;
  needs: Capability[];
  summary: string;
}

const REST: PendingRoute[] = [
];

const WS: PendingRoute[] = [
  { url: '/ws/dialogue', needs: ['stt', 'llm', 'tts'], summary: 'Full-duplex voice dialogue (WebSocket)' },
];

const NOT_YET = 'Not available in this build yet: answers 503 while its engines are not ready (`engine_not_configured`, `model_missing`, ...) and 501 `not_implemented` once they are.';

export const pendingRoutes: FastifyPluginAsyncZod<{ engines: EngineRegistry; wsDocs: WsDocs }> = async (app, { engines, wsDocs }) => {
  for (const route of REST) {
    app.post(
      route.url,
      {
        schema: {
          tags: ['pending'],
          summary: route.summary,
          description: NOT_YET,
          body: z.unknown().optional(),
          response: { 501: errorEnvelopeSchema, 503: errorEnvelopeSchema },
        },
      },
      async () => {
        for (const capability of route.needs) engines.ready(capability);
        throw new ApiError(501, 'server_error', `${route.url} is not implemented in this build yet (its engines are ready).`, { code: 'not_implemented' });
      },
    );
  }

  for (const route of WS) {
    wsDocs.set(route.url, {
      summary: route.summary,
      tags: ['pending'],
      description: `${NOT_YET} On connect the server sends \`{"type":"error","error":{...},"request_id":"..."}\` and closes with 1013 (try again later).`,
    });
    app.get(
      route.url,
      { websocket: true },
      (socket, request) => {
        try {
          for (const capability of route.needs) engines.ready(capability);
          socket.close(1011, 'no service wired');
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          socket.send(JSON.stringify({ type: 'error', error: { message, type: 'server_error', code: 'engine_not_configured' }, request_id: request.id }));
          socket.close(1013, 'engine unavailable');
        }
      },
    );
  }
};
