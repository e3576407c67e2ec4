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
import { resolveGguf } from '../../models/gguf.ts';
import { RunnerEngine, type RunnerSupervision } from '../runner/runner-engine.ts';
import { siblingEntry } from '../runner/supervisor.ts';
import { modelNameOf, type LlamaCppOptions } from './llama-cpp.ts';
import type { LlmRunnerRequest } from './runner-protocol.ts';
import type { GenerationParams, LlmEngine, LlmEvent, LlmInput } from './types.ts';

export class LlamaRunnerEngine extends RunnerEngine<LlamaCppOptions, LlmRunnerRequest, LlmEvent> implements LlmEngine {
  readonly id = 'llama-cpp';
  readonly capability = 'llm' as const;

  constructor(
    private readonly options: LlamaCppOptions,
    private readonly logger: Logger,
    metrics?: Metrics,
    supervision?: RunnerSupervision,
  ) {
    super({
      capability: 'llm',
      kind: 'LLM',
      what: 'text-generation',
      modelName: modelNameOf(options.model),
      entry: siblingEntry(import.meta.url, 'llm-runner'),
      serialization: 'json',
      logger,
      metrics,
      ...supervision,
    });
  }

  /**
   * Finds (or downloads) the GGUF here, so a missing model is reported at once without starting a
   * runner; then starts the runner on that file. Never rejects.
   */
  load(): Promise<void> {
    return this.startRunner(this.options.model, this.logger, async () => {
      const file = await resolveGguf(this.options.model, { ...this.options.hf, logger: this.logger, variable: this.options.setting ?? 'model' });
      return { ...this.options, model: file };
    });
  }

  generate(input: LlmInput, params: GenerationParams, signal: AbortSignal): AsyncIterable<LlmEvent> {
    return this.runner.stream({ input, params }, signal);
  }
}
