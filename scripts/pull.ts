/**
 * `npm run pull [-- <id>…]`: downloads the configured models into the Hugging Face cache ahead of
 * time, like `ollama pull`: every local model of MODELS_FILE (or one or more by id or alias), or
 * GEMMA_MODEL and LOCAL_WHISPER_MODEL without a models file. Progress is logged on stderr.
 * Uses the same configuration as the service. Exit 1 when a model could not be pulled or a name is unknown.
 */
import { pino } from 'pino';
import { loadConfig, readEnvironment } from '../src/config.ts';
import { pullOne, pullTargets, selectTargets } from '../src/models/pull.ts';
import { createLogger } from '../src/observability/logger.ts';

const config = loadConfig(readEnvironment());
const logger = createLogger(config.LOG_LEVEL, pino.destination(2));
let targets;
try {
  targets = selectTargets(pullTargets(config), process.argv.slice(2));
} catch (error) {
  console.error((error as Error).message);
  process.exit(1);
}
if (targets.length === 0) console.log('Nothing to pull: every configured model is served by an OpenAI-compatible server.');
let failed = false;
for (const target of targets) {
  try {
    const file = await pullOne(target, config, logger);
    console.log(`${target.id} ${target.spec} -> ${file}`);
  } catch (error) {
    failed = true;
    console.error(`${target.id}: ${(error as Error).message}`);
  }
}
process.exit(failed ? 1 : 0);
