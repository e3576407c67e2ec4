import assert from 'node:assert/strict';
import { ConfigError, loadConfig } from '../../src/config.ts';

/** The problems loadConfig lists for `env` (it must refuse it). */
export function configProblems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.problems;
  }
  assert.fail('expected a ConfigError');
}
