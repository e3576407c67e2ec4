/** Builds the OpenAPI document from the app's routes (zod schemas) without loading any model. */
import { pino } from 'pino';
import { buildApp } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { EngineRegistry } from '../src/engines/registry.ts';
import { ApiKeyStore } from '../src/http/auth.ts';
import { Metrics } from '../src/observability/metrics.ts';
import { MemorySessionStore } from '../src/sessions/memory-store.ts';

export const OPENAPI_PATH = 'docs/scalar/openapi.yaml';

export async function openApiYaml(): Promise<string> {
  const config = loadConfig({});
  const app = await buildApp(config, {
    engines: new EngineRegistry({ llm: [], stt: [], tts: [] }),
    metrics: new Metrics(),
    logger: pino({ level: 'silent' }),
    keys: new ApiKeyStore(() => []),
    sessions: new MemorySessionStore({ maxSessions: 1, ttlSeconds: 60, maxStoredTurns: 2 }),
  });
  await app.ready();
  const yaml = app.swagger({ yaml: true });
  await app.close();
  return yaml;
}
