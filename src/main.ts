/**
 * Process entry: configuration → logger/metrics → engines → app → listen. Models load after the
 * port is open (readiness says `loading` meanwhile). SIGTERM/SIGINT stop accepting, let in-flight
 * requests finish within SHUTDOWN_GRACE_SECONDS, close the engines and exit 0. SIGHUP re-reads the
 * API keys (and the TLS certificate), as does a change of API_KEYS_FILE (checked every 5 s).
 */
import fs from 'node:fs';
import { createSessionStore } from './sessions/index.ts';
import { buildApp } from './app.ts';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { createEngines } from './engines/index.ts';
import { ApiKeyStore } from './http/auth.ts';
import { apiKeySource } from './keys.ts';
import { reloadTls } from './http/tls.ts';
import { findOnPath, GpuSampler } from './observability/gpu.ts';
import { createLogger } from './observability/logger.ts';
import { Metrics } from './observability/metrics.ts';

function configOrExit(): Config {
  try {
    return loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`gemma-3-api: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
}

async function main(): Promise<void> {
  const config = configOrExit();
  // whisper.cpp windows run on libuv's threadpool (default 4 threads), which file I/O and DNS
  // share; size it before its first use so STT_PARALLEL windows never starve them.
  process.env.UV_THREADPOOL_SIZE ??= String(Math.max(4, config.STT_PARALLEL + 4));
  const logger = createLogger(config.LOG_LEVEL);
  const metrics = new Metrics();
  const engines = createEngines(config, { logger, metrics });
  const keys = new ApiKeyStore(apiKeySource(config));
  const sessions = createSessionStore(config, metrics, logger);
  const app = await buildApp(config, { engines, metrics, logger, keys, sessions });

  const nvidiaSmi = config.GPU_METRICS === 'auto' ? findOnPath('nvidia-smi') : undefined;
  const gpu = nvidiaSmi ? new GpuSampler(nvidiaSmi, metrics, logger) : undefined;
  gpu?.start(config.GPU_METRICS_INTERVAL_SECONDS);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, grace_seconds: config.SHUTDOWN_GRACE_SECONDS }, 'shutting down: draining in-flight requests');
    const deadline = setTimeout(() => {
      logger.warn('grace period over; exiting with requests still in flight');
      process.exit(1);
    }, config.SHUTDOWN_GRACE_SECONDS * 1000);
    deadline.unref();
    // Connections busy when closing began become idle as their responses finish; close those too
    // instead of waiting for the keep-alive timeout.
    const reaper = setInterval(() => app.server.closeIdleConnections(), 100);
    try {
      await app.close();
      clearInterval(reaper);
      gpu?.stop();
      await engines.close();
      await sessions.close();
      logger.info('stopped');
      clearTimeout(deadline);
      logger.flush();
      process.exit(0);
    } catch (error) {
      logger.error({ err: error }, 'error while shutting down');
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  const reloadKeys = (why: string) => {
    try {
      logger.info({ keys: keys.reload(), trigger: why }, 'API keys reloaded');
    } catch (error) {
      logger.error({ err: error }, 'API key reload failed; keeping the previous keys');
    }
  };
  // a mounted Kubernetes secret changes without anyone sending SIGHUP: watch the file as well
  if (config.API_KEYS_FILE) fs.watchFile(config.API_KEYS_FILE, { interval: 5000, persistent: false }, (now, before) => now.mtimeMs !== before.mtimeMs && reloadKeys('API_KEYS_FILE changed'));
  process.on('SIGHUP', () => {
    reloadKeys('SIGHUP');
    try {
      if (reloadTls(app.server, config)) logger.info('TLS certificate reloaded');
    } catch (error) {
      logger.error({ err: error }, 'TLS certificate reload failed; keeping the previous one');
    }
  });

  await app.listen({ port: config.PORT, host: config.HOST });
  void engines.start().then(() => logger.info({ readiness: engines.readiness() }, 'engines loaded'));
}

main().catch((error: unknown) => {
  process.stderr.write(`gemma-3-api: failed to start: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
