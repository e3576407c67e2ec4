/** The model runners' configuration: STT_RUNNER, RUNNER_HANG_SECONDS, RUNNER_LOAD_TIMEOUT_SECONDS, RUNNER_RESTART_BACKOFF_MS. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config.ts';
import { configProblems } from '../helpers/config.ts';
import { runnerSupervision, whisperCppOptions } from '../../src/engines/index.ts';

describe('runner configuration', () => {
  it('defaults: both runners in processes, a 30 s hang watchdog, a 600 s load limit, restarts after 250 ms doubling up to 10 s', () => {
    const config = loadConfig({});
    assert.equal(config.STT_RUNNER, 'process');
    assert.equal(config.LLM_RUNNER, 'process');
    assert.deepEqual(runnerSupervision(config), { backoffMs: { min: 250, max: 10_000 }, hangMs: 30_000, loadTimeoutMs: 600_000 });
  });

  it('reads min,max backoff and the hang seconds (0 = no watchdog)', () => {
    const config = loadConfig({ STT_RUNNER: 'inline', RUNNER_RESTART_BACKOFF_MS: ' 100 , 2000 ', RUNNER_HANG_SECONDS: '0', RUNNER_LOAD_TIMEOUT_SECONDS: '0' });
    assert.equal(config.STT_RUNNER, 'inline');
    assert.deepEqual(runnerSupervision(config), { backoffMs: { min: 100, max: 2000 }, hangMs: 0, loadTimeoutMs: 0 });
  });

  it('refuses a backoff that is not min,max with 1 ≤ min ≤ max, and a bad STT_RUNNER', () => {
    for (const value of ['250', '250,', 'a,b', '0,100', '500,100', '1,4000000']) {
      const problems = configProblems({ RUNNER_RESTART_BACKOFF_MS: value });
      assert.ok(problems.some((p) => p.startsWith('RUNNER_RESTART_BACKOFF_MS')), `${value}: ${problems.join('; ')}`);
    }
    assert.ok(configProblems({ STT_RUNNER: 'thread' }).some((p) => p.startsWith('STT_RUNNER')));
    assert.ok(configProblems({ RUNNER_HANG_SECONDS: '-1' }).some((p) => p.startsWith('RUNNER_HANG_SECONDS')));
    assert.ok(configProblems({ RUNNER_LOAD_TIMEOUT_SECONDS: 'soon' }).some((p) => p.startsWith('RUNNER_LOAD_TIMEOUT_SECONDS')));
  });
});

describe('WHISPER_BEAM_SIZE', () => {
  it('reaches the Whisper adapter (default 5, 1 = greedy); out of range is a start-up problem naming it', () => {
    assert.equal(whisperCppOptions(loadConfig({})).beamSize, 5);
    assert.equal(whisperCppOptions(loadConfig({ WHISPER_BEAM_SIZE: '1' })).beamSize, 1);
    assert.ok(configProblems({ WHISPER_BEAM_SIZE: '0' }).some((p) => p.startsWith('WHISPER_BEAM_SIZE')));
  });
});
