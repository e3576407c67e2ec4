/**
 * The playground (frontend/, built into frontend/dist) served at /playground/ when the build
 * exists, so one `npm start` gives the whole product; `/` redirects there. Without a build,
 * /playground/ says how to make one. Public: the page itself holds no secrets (the API key is
 * typed into it and kept in the browser).
 */
import fs from 'node:fs';
import path from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { ApiError } from '../errors.ts';

export const PLAYGROUND_PREFIX = '/playground/';

export async function registerPlayground(app: FastifyInstance, dir: string): Promise<void> {
  const root = path.resolve(dir);
  const built = fs.existsSync(path.join(root, 'index.html'));
  app.get('/', { config: { public: true }, schema: { hide: true } }, async (_request, reply) => reply.redirect(PLAYGROUND_PREFIX));
  if (!built) {
    app.get('/playground/*', { config: { public: true }, schema: { hide: true } }, async () => {
      throw new ApiError(404, 'not_found_error', `The playground is not built (no ${path.join(root, 'index.html')}). Build it with \`npm run build -w frontend\`, or set PLAYGROUND_DIR.`, { code: 'playground_not_built' });
    });
    return;
  }
  await app.register(fastifyStatic, {
    root,
    prefix: PLAYGROUND_PREFIX,
    decorateReply: false,
    index: ['index.html'],
    cacheControl: true,
    maxAge: 0,
  });
}
