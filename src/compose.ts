/**
 * The composition root: one configuration → metrics, engines, API keys, the session store and the
 * app built on them. `main.ts` runs it for the process; the tests' in-process app
 * (test/helpers/app.ts) runs the same function, so both are wired alike.
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp } from './app.ts';
import type { Config } from './config.ts';
import { createEngines } from './engines/index.ts';
import type { EngineRegistry } from './engines/registry.ts';
import { ApiKeyStore } from './http/auth.ts';
import { adminKeySource, apiKeySource } from './keys.ts';
import { Metrics } from './observability/metrics.ts';
import { createSessionStore } from './sessions/index.ts';
import type { SessionStore } from './sessions/types.ts';

export interface ComposeOptions {
  logger: Logger;
  /** The engines to serve with, instead of those the configuration names (tests' scripted ones). */
  engines?: (config: Config, metrics: Metrics) => EngineRegistry;
  /** Where the accepted API keys come from (default: API_KEYS and API_KEYS_FILE, re-read on reload). */
  keySource?: () => string[];
  /** Where the operator keys come from (default: ADMIN_API_KEYS and ADMIN_API_KEYS_FILE). */
  adminKeySource?: () => string[];
}

export interface Composed {
  app: FastifyInstance;
  engines: EngineRegistry;
  metrics: Metrics;
  keys: ApiKeyStore;
  sessions: SessionStore;
  /** Closes the app (in-flight requests finish first), then the engines, then the session store. */
  close(): Promise<void>;
}

/** Builds everything but listens to nothing and loads no model: the caller does both. */
export async function compose(config: Config, options: ComposeOptions): Promise<Composed> {
  const { logger } = options;
  const metrics = new Metrics();
  const engines = options.engines ? options.engines(config, metrics) : createEngines(config, { logger, metrics });
  const keys = new ApiKeyStore(options.keySource ?? apiKeySource(config), options.adminKeySource ?? adminKeySource(config));
  const sessions = createSessionStore(config, metrics, logger);
  const app = await buildApp(config, { engines, metrics, logger, keys, sessions });
  return {
    app,
    engines,
    metrics,
    keys,
    sessions,
    close: async () => {
      await app.close();
      await engines.close();
      await sessions.close();
    },
  };
}
