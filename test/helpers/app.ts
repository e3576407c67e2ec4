/** Starts the real app on an ephemeral loopback port with captured logs. */
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { compose } from '../../src/compose.ts';
import { loadConfig, type Config } from '../../src/config.ts';
import type { EngineRegistry } from '../../src/engines/registry.ts';
import type { ApiKeyStore } from '../../src/http/auth.ts';
import { createLogger } from '../../src/observability/logger.ts';
import type { Metrics } from '../../src/observability/metrics.ts';
import { logWriter, recordEnvSecrets, recordSecrets } from './test-logs.ts';

export interface TestApp {
  app: FastifyInstance;
  config: Config;
  url: string;
  wsUrl: string;
  logs: string[];
  keys: ApiKeyStore;
  engines: EngineRegistry;
  metrics: Metrics;
  close: () => Promise<void>;
}

export interface StartOptions {
  env?: Record<string, string>;
  engines?: (config: Config, metrics: Metrics) => EngineRegistry;
  keySource?: () => string[];
}

export async function startApp(options: StartOptions = {}): Promise<TestApp> {
  // Tests never reach for the network: no model downloads unless a test points HF_ENDPOINT at a local stand-in.
  const config = loadConfig({ LOG_LEVEL: 'debug', STT_BACKEND: 'local', TTS_BACKEND: 'embedded', MODEL_DOWNLOAD: 'false', ...options.env });
  recordEnvSecrets(options.env ?? {});
  const logs: string[] = [];
  const keep = logWriter('app');
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      keep(chunk.toString());
      logs.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  const logger = createLogger(config.LOG_LEVEL, sink);
  const source = options.keySource;
  // the keys of this app's own configuration (its `env`), not of the test process's environment
  const keySource = source
    ? () => {
        const list = source();
        recordSecrets(list);
        return list;
      }
    : () => config.API_KEYS;
  const { app, engines, metrics, keys, close } = await compose(config, { logger, engines: options.engines, keySource, adminKeySource: () => config.ADMIN_API_KEYS });
  await app.listen({ port: 0, host: '127.0.0.1' });
  await engines.start();
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    app,
    config,
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    logs,
    keys,
    engines,
    metrics,
    close,
  };
}
