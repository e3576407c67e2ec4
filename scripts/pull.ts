/**
 * `npm run pull`: downloads the configured models into the Hugging Face cache ahead of time
 * (with a progress bar), like `ollama pull`. Uses the same configuration as the service.
 */
import { hfToken, loadConfig, readEnvironment } from '../src/config.ts';
import { resolveGguf } from '../src/models/gguf.ts';
import { createLogger } from '../src/observability/logger.ts';
import { pino } from 'pino';

const config = loadConfig(readEnvironment());
const logger = createLogger(config.LOG_LEVEL, pino.destination(2));
let failed = false;
if (config.LLM_BACKEND === 'local') {
  try {
    const file = await resolveGguf(config.GEMMA_MODEL, {
      home: config.HF_HOME,
      token: hfToken(config),
      endpoint: config.HF_ENDPOINT,
      download: true,
      timeoutMs: config.MODEL_DOWNLOAD_TIMEOUT_SECONDS * 1000,
      logger,
      variable: 'GEMMA_MODEL',
    });
    console.log(`GEMMA_MODEL ${config.GEMMA_MODEL} -> ${file}`);
  } catch (error) {
    failed = true;
    console.error(`GEMMA_MODEL: ${(error as Error).message}`);
  }
} else {
  console.log('LLM_BACKEND=openai: nothing to pull for the LLM');
}
process.exit(failed ? 1 : 0);
