/** Where accepted API keys come from, re-read on every rotation (SIGHUP). */
import type { Config } from './config.ts';
import { readEnvironment } from './config.ts';
import { readKeysFile } from './http/auth.ts';

type KeyVariables = readonly ['API_KEYS', 'API_KEYS_FILE'] | readonly ['ADMIN_API_KEYS', 'ADMIN_API_KEYS_FILE'];

/** Keys from a comma-separated variable (re-read from the environment and `.env`) plus its file. */
function keysFrom(config: Config, [list, fileVariable]: KeyVariables): () => string[] {
  return () => {
    const env = readEnvironment();
    const fromEnv = (env[list] ?? '').split(',').map((k) => k.trim()).filter(Boolean);
    const file = env[fileVariable]?.trim() || config[fileVariable];
    return [...fromEnv, ...(file ? readKeysFile(file) : [])];
  };
}

/** Operator keys (ADMIN_API_KEYS + ADMIN_API_KEYS_FILE): the model load/unload routes need one. */
export function adminKeySource(config: Config): () => string[] {
  return keysFrom(config, ['ADMIN_API_KEYS', 'ADMIN_API_KEYS_FILE']);
}

/** Keys from API_KEYS (re-read from the environment and `.env`) plus API_KEYS_FILE; operator keys are added by the store. */
export function apiKeySource(config: Config): () => string[] {
  return keysFrom(config, ['API_KEYS', 'API_KEYS_FILE']);
}
