/**
 * Process entry: configuration → logger → the composition root (src/compose.ts: metrics, engines,
 * keys, sessions, app) → listen. Models load after the port is open (readiness says `loading`
 * meanwhile). SIGTERM/SIGINT stop accepting, let in-flight requests finish within
 * SHUTDOWN_GRACE_SECONDS, close the engines and exit 0. SIGHUP re-reads the API keys (and the TLS
 * certificate), as does a change of API_KEYS_FILE (checked every 5 s).
 */
import fs from 'node:fs';
import { compose } from './compose.ts';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { listen, ListenError, type Listening } from './http/listen.ts';
import { reloadTls } from './http/tls.ts';
import { findOnPath, GpuSampler } from './observability/gpu.ts';
import { createLogger } from './observability/logger.ts';

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
  const composed = await compose(config, { logger });
  const { app, engines, metrics, keys } = composed;

  const nvidiaSmi = config.GPU_METRICS === 'auto' ? findOnPath('nvidia-smi') : undefined;
  const gpu = nvidiaSmi ? new GpuSampler(nvidiaSmi, metrics, logger) : undefined;
  gpu?.start(config.GPU_METRICS_INTERVAL_SECONDS);

  // set once both ports listen; a signal may come before that
  const listeners: { current?: Listening } = {};
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
    const reaper = setInterval(() => (listeners.current ? listeners.current.closeIdleConnections() : app.server.closeIdleConnections()), 100);
    try {
      await composed.close(); // the app (in-flight requests first), then the engines and sessions
      clearInterval(reaper);
      gpu?.stop();
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
  for (const [variable, file] of [['API_KEYS_FILE', config.API_KEYS_FILE], ['ADMIN_API_KEYS_FILE', config.ADMIN_API_KEYS_FILE]] as const) {
    if (file) fs.watchFile(file, { interval: 5000, persistent: false }, (now, before) => now.mtimeMs !== before.mtimeMs && reloadKeys(`${variable} changed`));
  }
  process.on('SIGHUP', () => {
    reloadKeys('SIGHUP');
    try {
      // both ports (the browser port's server too, once listening)
      if (reloadTls([app.server, ...(listeners.current?.secureServers ?? [])], config)) logger.info('TLS certificate reloaded');
    } catch (error) {
      logger.error({ err: error }, 'TLS certificate reload failed; keeping the previous one');
    }
  });

  const listening = await listen(app, config);
  listeners.current = listening;
  // the first thing a newcomer needs: where to click (browsers refuse 6666, hence the second port)
  const people = listening.browserUrl;
  logger.info(
    { api: listening.apiUrl, playground: people && `${people}/playground/`, docs: people && `${people}/docs` },
    people
      ? `ready for browsers at ${people}/playground/ (API reference: ${people}/docs); API clients: ${listening.apiUrl}`
      : `API clients: ${listening.apiUrl}; BROWSER_PORT is off (browsers refuse port 6666: set BROWSER_PORT to open the playground and /docs)`,
  );
  void engines.start().then(() => logger.info({ readiness: engines.readiness() }, 'engines loaded'));
}

main().catch((error: unknown) => {
  // a busy port is the operator's to fix: one line naming it and the variable, no stack trace
  if (error instanceof ListenError) {
    process.stderr.write(`gemma-3-api: ${error.message}\n`);
    process.exit(1);
  }
  process.stderr.write(`gemma-3-api: failed to start: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
