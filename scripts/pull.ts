/**
 * `npm run pull`: downloads the configured models (GEMMA_MODEL, LOCAL_WHISPER_MODEL) into the Hugging Face cache ahead of time
 * (with a progress bar), like `ollama pull`. Uses the same configuration as the service.
 */
import { loadConfig, readEnvironment } from '../src/config.ts';
import { hfSettings } from '../src/models/hugging-face.ts';
import { resolveWhisperModel } from '../src/models/whisper.ts';
import { resolveGguf } from '../src/models/gguf.ts';
import { createLogger } from '../src/observability/logger.ts';
import { pino } from 'pino';

const config = loadConfig(readEnvironment());
const logger = createLogger(config.LOG_LEVEL, pino.destination(2));
let failed = false;
if (config.LLM_BACKEND === 'local') {
  try {
    const file = await resolveGguf(config.GEMMA_MODEL, { ...hfSettings(config), download: true, logger, variable: 'GEMMA_MODEL' });
    console.log(`GEMMA_MODEL ${config.GEMMA_MODEL} -> ${file}`);
  } catch (error) {
    failed = true;
    console.error(`GEMMA_MODEL: ${(error as Error).message}`);
  }
} else {
  console.log('LLM_BACKEND=openai: nothing to pull for the LLM');
}
if (config.STT_BACKEND.includes('local') && config.ENABLE_LOCAL_WHISPER) {
  try {
    const { file } = await resolveWhisperModel(config.LOCAL_WHISPER_MODEL, { ...hfSettings(config), download: true, logger, variable: 'LOCAL_WHISPER_MODEL' });
    console.log(`LOCAL_WHISPER_MODEL ${config.LOCAL_WHISPER_MODEL} -> ${file}`);
  } catch (error) {
    failed = true;
    console.error(`LOCAL_WHISPER_MODEL: ${(error as Error).message}`);
  }
}
process.exit(failed ? 1 : 0);
