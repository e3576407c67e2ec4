/** The supervision settings of every model runner, from the configuration (RUNNER_*). */
import type { Config } from '../../config.ts';
import type { RunnerSpec } from './supervisor.ts';

export function runnerSupervision(config: Config): Pick<RunnerSpec, 'backoffMs' | 'hangMs'> {
  return { backoffMs: config.RUNNER_RESTART_BACKOFF_MS, hangMs: config.RUNNER_HANG_SECONDS * 1000 };
}
