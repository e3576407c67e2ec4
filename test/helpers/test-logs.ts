/**
 * The logs of a whole test run, kept for one check at its end (scripts/check-test-logs.mjs): every
 * in-process app and every spawned service writes its log lines under TEST_LOG_DIR (set by
 * scripts/run-tests.mjs), and every secret a test configures or presents (API keys, upstream keys)
 * is recorded there; the check fails when any secret appears in any log line.
 */
import fs from 'node:fs';
import path from 'node:path';

const dir = process.env.TEST_LOG_DIR;
let counter = 0;

/** Records secrets the logs must never contain. */
export function recordSecrets(values: Iterable<string | undefined>): void {
  if (!dir) return;
  const list = [...values].map((v) => v?.trim()).filter((v): v is string => Boolean(v));
  if (list.length > 0) fs.appendFileSync(path.join(dir, `secrets-${process.pid}.txt`), `${list.join('\n')}\n`);
}

/** The secrets in a service environment: (ADMIN_)API_KEYS, (ADMIN_)API_KEYS_FILE's keys, *_API_KEY, *_TOKEN. */
export function recordEnvSecrets(env: Record<string, string | undefined>): void {
  const found: (string | undefined)[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (name === 'API_KEYS' || name === 'ADMIN_API_KEYS') found.push(...(value ?? '').split(','));
    else if (/_API_KEY$|_TOKEN$/.test(name) && !name.endsWith('_REQUIRE_API_KEY')) found.push(value);
    else if ((name === 'API_KEYS_FILE' || name === 'ADMIN_API_KEYS_FILE') && value && fs.existsSync(value)) found.push(...fs.readFileSync(value, 'utf8').split('\n').filter((l) => !l.trim().startsWith('#')));
  }
  recordSecrets(found);
}

/** Where one app's or service's log lines go (a no-op outside a full run). */
export function logWriter(kind: string): (text: string) => void {
  if (!dir) return () => undefined;
  const file = path.join(dir, `${kind}-${process.pid}-${++counter}.log`);
  return (text) => fs.appendFileSync(file, text);
}
