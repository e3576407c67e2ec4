/** MODEL_KEEP_ALIVE (Ollama's keep_alive): a negative value, or one longer than a timer holds, is forever (-1), never a timer that fires at once. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config.ts';
import { configProblems } from '../helpers/config.ts';

describe('MODEL_KEEP_ALIVE', () => {
  it('reads durations; negative values and ones past 2^31-1 ms (~24.8 days) mean forever', () => {
    const cases: [string, number][] = [['5m', 300_000], ['90', 90_000], ['0', 0], ['250ms', 250], ['-1', -1], ['-5', -1], ['-1m', -1], ['596h', 2_145_600_000], ['597h', -1], ['1000h', -1], ['99999999999999999999999h', -1]];
    for (const [value, ms] of cases) assert.equal(loadConfig({ MODEL_KEEP_ALIVE: value }).MODEL_KEEP_ALIVE, ms, value);
  });

  it('refuses what is not a duration', () => {
    for (const value of ['forever', '5 minutes', '1d', '--1']) assert.ok(configProblems({ MODEL_KEEP_ALIVE: value }).some((p) => p.startsWith('MODEL_KEEP_ALIVE')), value);
  });
});
