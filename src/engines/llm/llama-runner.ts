/**
 * The embedded LLM behind a process boundary: the gateway-side adapter of the LLM port that runs
 * llama.cpp in a supervised child process (llm-runner.ts, LLM_RUNNER=process). Supervision —
 * restarts with backoff, `engine_restarting` for the requests in flight, crash-on-load → `error`,
 * metrics, no orphans — is the shared runner/supervisor.ts. Tokens stream over the IPC channel one
 * message per text chunk (JSON serialization: the cheapest for small messages); a client that
 * leaves sends `cancel` at once (llama.cpp stops within a token).
 */
import type { Logger } from 'pino';
import type { Metrics } from '../../observability/metrics.ts';
import { ModelUnavailableError } from '../../models/errors.ts';
import { resolveGguf } from '../../models/gguf.ts';
import { RunnerSupervisor, siblingEntry, type RunnerSpec } from '../runner/supervisor.ts';
import type { EngineState } from '../types.ts';
import { modelNameOf, type LlamaCppOptions } from './llama-cpp.ts';
import type { LlmRunnerRequest } from './runner-protocol.ts';
import type { GenerationParams, LlmEngine, LlmEvent, LlmInput } from './types.ts';

export class LlamaRunnerEngine implements LlmEngine {
  readonly id = 'llama-cpp';
  readonly capability = 'llm' as const;
  readonly modelName: string;
  private readonly runner: RunnerSupervisor<LlamaCppOptions, LlmRunnerRequest, LlmEvent>;

  constructor(
    private readonly options: LlamaCppOptions,
    private readonly logger: Logger,
    metrics?: Metrics,
    supervision?: Pick<RunnerSpec, 'backoffMs' | 'hangMs'>,
  ) {
    this.modelName = modelNameOf(options.model);
    this.runner = new RunnerSupervisor({
      capability: 'llm',
      kind: 'LLM',
      what: 'text-generation',
      modelName: this.modelName,
      entry: siblingEntry(import.meta.url, 'llm-runner'),
      serialization: 'json',
      logger,
      metrics,
      ...supervision,
    });
  }

  state(): EngineState {
    return this.runner.state();
  }

  /** The runner's pid while it runs (tests and operators). */
  get pid(): number | undefined {
    return this.runner.pid;
  }

  memoryBytes(): number | undefined {
    return this.rssBytes() || undefined;
  }

  rssBytes(): number {
    return this.runner.rssBytes();
  }

  /**
   * Finds (or downloads) the GGUF here, so a missing model is reported at once without starting a
   * runner; then starts the runner on that file. Never rejects.
   */
  async load(): Promise<void> {
    let file: string;
    try {
      file = await resolveGguf(this.options.model, { ...this.options.hf, logger: this.logger, variable: this.options.setting ?? 'model' });
    } catch (error) {
      const detail = error instanceof ModelUnavailableError ? error.message : `failed to load ${this.options.model}: ${(error as Error).message}`;
      this.runner.fail({ status: error instanceof ModelUnavailableError ? 'missing_model' : 'error', detail });
      this.logger.error({ engine: this.id, detail }, 'LLM not available');
      return;
    }
    await this.runner.start({ ...this.options, model: file });
  }

  generate(input: LlmInput, params: GenerationParams, signal: AbortSignal): AsyncIterable<LlmEvent> {
    return this.runner.stream({ input, params }, signal);
  }

  /** Stops the runner and frees its memory; the next request that names the model loads it again. */
  unload(): Promise<void> {
    return this.runner.unload();
  }

  close(): Promise<void> {
    return this.runner.close();
  }
}
