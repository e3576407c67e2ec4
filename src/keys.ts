/** Where accepted API keys come from, re-read on every rotation (SIGHUP). */
import type { Config } from './config.ts';
import { readEnvironment } from './config.ts';
import { readKeysFile } from './http/auth.ts';

/** Keys from API_KEYS (re-read from the environment and `.env`) plus API_KEYS_FILE. */
export function apiKeySource(config: Config): () => string[] {
  return () => {
    const env = readEnvironment();
    const fromEnv = (env.API_KEYS ?? '').split(',').map((k) => k.trim()).filter(Boolean);
    const file = env.API_KEYS_FILE?.trim() || config.API_KEYS_FILE;
    return [...fromEnv, ...(file ? readKeysFile(file) : [])];
  };
}
