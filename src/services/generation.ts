/**
 * Text generation, shared by /v1/generate and the OpenAI-compatible routes: admission (LLM_PARALLEL
 * running, LLM_QUEUE_SIZE waiting), limits, engine choice, metrics. `start` does everything that can
 * fail with a clean HTTP status *before* the first byte, then hands back the event stream.
 */
import type { Config } from '../config.ts';
import type { EngineRegistry } from '../engines/registry.ts';
import type { GenerationParams, GenerationResult, LlmEvent, LlmInput } from '../engines/llm/types.ts';
import { ApiError } from '../errors.ts';
import type { Metrics } from '../observability/metrics.ts';
import { outcomeOf } from '../observability/metrics.ts';
import { checkJsonSchema, type SchemaLimits } from '../engines/llm/schema-limits.ts';
import { Admission } from '../util/admission.ts';

export interface Generation {
  model: string;
  engine: string;
  events: AsyncIterable<LlmEvent>;
}

export class GenerationService {
  private readonly admission: Admission;
  private readonly tokens;
  private readonly ttft;
  private readonly schemaLimits: SchemaLimits;

  constructor(
    private readonly config: Config,
    private readonly engines: EngineRegistry,
    private readonly metrics: Metrics,
  ) {
    const queueDepth = metrics.gauge('llm_queue_depth', 'Generations waiting for a free slot.');
    const active = metrics.gauge('llm_active_generations', 'Generations running now.');
    this.schemaLimits = { maxBytes: config.GRAMMAR_MAX_SCHEMA_BYTES, maxDepth: config.GRAMMAR_MAX_DEPTH, maxEnumValues: config.GRAMMAR_MAX_ENUM_VALUES };
    this.admission = new Admission(config.LLM_PARALLEL, config.LLM_QUEUE_SIZE, 'generation', (running, queued) => {
      active.set(running);
      queueDepth.set(queued);
    });
    this.tokens = metrics.counter('llm_generated_tokens_total', 'Completion tokens generated.', ['engine']);
    this.ttft = metrics.histogram('llm_time_to_first_token_seconds', 'Time from admission to the first generated text.', ['engine'], [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);
  }

  /** Throws the 503 envelope before any work when no LLM engine (of the named model) is ready, 404 for an unknown model. */
  assertAvailable(model?: string): void {
    this.engines.assertServes('llm', model);
  }

  /** The id of the model a name picks (undefined: the default); 404 `model_not_found` for an unknown name. Loads nothing. */
  modelId(model?: string): string {
    return this.engines.model('llm', model).id;
  }

  /** Clamps max_tokens to LLM_MAX_TOKENS (the configured cap). */
  params(params: GenerationParams): GenerationParams {
    return { ...params, maxTokens: Math.min(params.maxTokens, this.config.LLM_MAX_TOKENS) };
  }

  /** `model`: the name the request sent (id or alias; undefined: the default model); `keepAliveMs`: its `keep_alive`, parsed. */
  async start(input: LlmInput, params: GenerationParams, signal: AbortSignal, operation: 'generate' | 'stream', model?: string, keepAliveMs?: number): Promise<Generation> {
    // a JSON schema's bounds (GRAMMAR_*) hold for every backend, and are checked before queueing
    if (params.responseFormat?.type === 'json_schema') checkJsonSchema(params.responseFormat.schema, this.schemaLimits);
    const entry = await this.engines.prepare('llm', model, signal);
    const [engine] = this.engines.ready('llm', entry.id);
    const release = await this.engines.hold(entry, () => this.admission.acquire(signal)); // until the generation ends
    const startedAt = performance.now();
    const iterator = engine!.generate(input, this.params(params), signal)[Symbol.asyncIterator]();
    let first: IteratorResult<LlmEvent>;
    try {
      first = await iterator.next(); // validation errors (context overflow, bad schema) surface here, before any byte
    } catch (error) {
      release();
      this.metrics.dependencyDuration.observe({ dependency: engine!.id, operation, outcome: outcomeOf(error) }, (performance.now() - startedAt) / 1000);
      throw error;
    }
    this.engines.keepAliveFor(entry, keepAliveMs); // accepted: its first event came
    this.ttft.observe({ engine: engine!.id }, (performance.now() - startedAt) / 1000);
    const tokens = this.tokens;
    // Cleanup runs exactly once: when the consumer finishes or leaves, or — if the consumer never
    // starts (the client left between admission and the first byte) — when the request aborts.
    let started = false;
    let finished = false;
    const finish = async (outcome: string) => {
      if (finished) return;
      finished = true;
      signal.removeEventListener('abort', onAbort);
      await iterator.return?.(undefined);
      release();
      this.metrics.dependencyDuration.observe({ dependency: engine!.id, operation, outcome }, (performance.now() - startedAt) / 1000);
    };
    const onAbort = () => {
      if (!started) void finish('aborted');
    };
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) onAbort();
    async function* events(): AsyncIterable<LlmEvent> {
      started = true;
      if (finished) return;
      let outcome: string = 'aborted'; // unless it ends or fails: a consumer that leaves early aborts
      try {
        let next = first;
        while (!next.done) {
          if (next.value.type === 'done') {
            outcome = 'success';
            tokens.inc({ engine: engine!.id }, next.value.result.usage.completionTokens);
          }
          yield next.value;
          next = await iterator.next();
        }
      } catch (error) {
        outcome = outcomeOf(error);
        throw error;
      } finally {
        await finish(outcome);
      }
    }
    return { model: entry.id, engine: engine!.id, events: events() };
  }

  /** Runs a generation to the end. */
  async complete(input: LlmInput, params: GenerationParams, signal: AbortSignal, model?: string): Promise<GenerationResult> {
    return this.result(await this.start(input, params, signal, 'generate', model));
  }

  /**
   * Reads a started generation to its end and returns its result (routes that answer in one piece
   * start first, to know the model's name, then wait for this).
   */
  async result(generation: Generation): Promise<GenerationResult> {
    for await (const event of generation.events) if (event.type === 'done') return event.result;
    throw new ApiError(500, 'server_error', 'The generation ended without a result.');
  }
}
