/**
 * What every engine behind a runner process shares: its state, pid, memory, unload and close are
 * the supervisor's (runner/supervisor.ts). An adapter extends this with its own load (find the
 * model file in the gateway, then start the runner) and its own streaming call.
 */
import type { Logger } from 'pino';
import { ModelUnavailableError } from '../../models/errors.ts';
import type { EngineState } from '../types.ts';
import { RunnerSupervisor, type RunnerSpec } from './supervisor.ts';

/** The supervision settings an adapter passes through (RUNNER_RESTART_BACKOFF_MS, RUNNER_HANG_SECONDS, RUNNER_LOAD_TIMEOUT_SECONDS). */
export type RunnerSupervision = Pick<RunnerSpec, 'backoffMs' | 'hangMs' | 'loadTimeoutMs'>;

export abstract class RunnerEngine<Load, Request, Event> {
  abstract readonly id: string;
  readonly modelName: string;
  protected readonly runner: RunnerSupervisor<Load, Request, Event>;
  /** "LLM", "Whisper": for logs. */
  private readonly kind: string;

  protected constructor(spec: RunnerSpec) {
    this.modelName = spec.modelName;
    this.kind = spec.kind;
    this.runner = new RunnerSupervisor<Load, Request, Event>(spec);
  }

  /**
   * Finds (or downloads) and checks the model file here in the gateway, so a missing model is
   * reported at once with its remedy and no runner starts; then starts the runner with the options
   * `locate` returns. Never rejects.
   */
  protected async startRunner(model: string, logger: Logger, locate: () => Promise<Load>): Promise<void> {
    let options: Load;
    const generation = this.runner.generation;
    this.runner.fail({ status: 'loading' });
    try {
      options = await locate();
      if (this.runner.generation !== generation) return; // unloaded while the file was being found
    } catch (error) {
      const missing = error instanceof ModelUnavailableError;
      const detail = missing ? error.message : `failed to load ${model}: ${(error as Error).message}`;
      this.runner.fail({ status: missing ? 'missing_model' : 'error', detail });
      logger.error({ engine: this.id, detail }, `${this.kind} not available`);
      return;
    }
    await this.runner.start(options);
  }

  state(): EngineState {
    return this.runner.state();
  }

  /** The runner's pid while it runs (tests and operators). */
  get pid(): number | undefined {
    return this.runner.pid;
  }

  /** The runner's resident memory (0 when none runs). */
  rssBytes(): number {
    return this.runner.rssBytes();
  }

  memoryBytes(): number | undefined {
    return this.runner.rssBytes() || undefined;
  }

  /** Stops the runner and frees its memory; the next request that names the model loads it again. */
  unload(): Promise<void> {
    return this.runner.unload();
  }

  close(): Promise<void> {
    return this.runner.close();
  }
}
