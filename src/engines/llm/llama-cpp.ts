/**
 * The embedded LLM: a Gemma 3 GGUF run in-process by llama.cpp through node-llama-cpp. The model
 * and one context with LLM_PARALLEL sequences load once; each generation borrows a sequence from
 * a fixed pool (no create/dispose per request: a disposed sequence frees its slot asynchronously)
 * and llama.cpp batches the active sequences together. Generation runs on llama.cpp's threads, so
 * the event loop stays free.
 */
import { ResourcePool } from '../../util/resource-pool.ts';
import type * as NodeLlamaCppModule from 'node-llama-cpp';
import type { ChatHistoryItem, ChatWrapper, LlamaGrammar } from 'node-llama-cpp';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { HfSettings } from '../../models/hugging-face.ts';
import { ApiError } from '../../errors.ts';
import { ModelUnavailableError } from '../../models/errors.ts';
import { resolveGguf } from '../../models/gguf.ts';
import type { EngineState } from '../types.ts';
import type { GenerationParams, GenerationResult, LlmEngine, LlmEvent, LlmInput, ResponseFormat } from './types.ts';
import { AsyncQueue } from '../../util/async-queue.ts';
import { GbnfBuilder } from './gbnf-builder.ts';
import { JSON_SCHEMA_GRAMMAR_STOP } from './gbnf-convert.ts';
import { grammarProblem, LLAMA_MAX_REPETITION_RULES, repetitionProblem, repetitions } from './schema-limits.ts';

type NodeLlamaCpp = typeof NodeLlamaCppModule;
type Llama = Awaited<ReturnType<NodeLlamaCpp['getLlama']>>;
type LlamaModel = Awaited<ReturnType<Llama['loadModel']>>;
type LlamaContext = Awaited<ReturnType<LlamaModel['createContext']>>;
type LlamaContextSequence = ReturnType<LlamaContext['getSequence']>;

/** Sampling for requests that set none. */
export interface SamplingDefaults {
  /** Sampling temperature; 0 = greedy. */
  temperature: number;
  /** Sample among the k most likely tokens only. */
  topK: number;
  /** Nucleus sampling: the smallest token set whose probability reaches p. */
  topP: number;
}

/** What the embedded llama.cpp engine (and its runner process) needs; plain data, so it crosses IPC. */
export interface LlamaCppOptions {
  /** The GGUF: a file path or an `hf:org/repo/file.gguf` URI (resolved through `hf`). */
  model: string;
  /** Sampling used when a request sets none. */
  sampling: SamplingDefaults;
  /** CPU threads for llama.cpp (a number, already resolved: no "auto"). */
  threads: number;
  /** Context size in tokens, shared by all `parallel` sequences. */
  contextSize: number;
  /** Sequences decoded together (concurrent generations). */
  parallel: number;
  /** `auto`, `cpu`, `cuda`, `cuda:N`, `vulkan`, `metal`: which llama.cpp build and GPU to use. */
  device: string;
  /** Layers to offload to the GPU: `auto`, `max` or a number. */
  gpuLayers: string;
  /** Where `hf:` models are cached and fetched from. */
  hf: HfSettings;
  /** The configuration entry that names `model`, quoted in remedies (`GEMMA_MODEL`, a models-file path). */
  setting?: string;
  /**
   * Most repetitions (`{m,n}` in all: a JSON schema's maxLength, minLength, maxItems, minItems) a
   * schema's grammar may hold: llama.cpp expands them per generation, synchronously. Default 20,000.
   */
  maxGrammarRepetitions?: number;
}

/** `hf:org/repo/gemma-3-1b-it-Q4_K_M.gguf` or `/models/gemma.gguf` → `gemma-3-1b-it-Q4_K_M` */
export function modelNameOf(spec: string): string {
  return (spec.split('/').pop() ?? spec).replace(/\.gguf$/i, '');
}

/**
 * A request's sampling settings over the configured defaults, in node-llama-cpp's terms. The
 * penalties replace node-llama-cpp's default repeat-penalty settings only when a request sets one.
 */
export function samplingOptions(params: GenerationParams, defaults: SamplingDefaults) {
  const penalties = params.presencePenalty !== undefined || params.frequencyPenalty !== undefined;
  return {
    temperature: params.temperature ?? defaults.temperature,
    topK: params.topK ?? defaults.topK,
    topP: params.topP ?? defaults.topP,
    seed: params.seed,
    ...(penalties ? { repeatPenalty: { presencePenalty: params.presencePenalty ?? 0, frequencyPenalty: params.frequencyPenalty ?? 0 } } : {}),
  };
}

function gpuOption(device: string): false | 'auto' | 'cuda' | 'vulkan' | 'metal' {
  if (device === 'cpu') return false;
  if (device === 'auto') return 'auto';
  const kind = device.split(':')[0] as 'cuda' | 'vulkan' | 'metal';
  const index = device.split(':')[1];
  // Device placement: expose only the chosen GPU to the CUDA runtime before it initializes.
  if (kind === 'cuda' && index !== undefined && process.env.CUDA_VISIBLE_DEVICES === undefined) process.env.CUDA_VISIBLE_DEVICES = index;
  return kind;
}

export class LlamaCppEngine implements LlmEngine {
  readonly id = 'llama-cpp';
  readonly capability = 'llm' as const;
  readonly modelName: string;
  private current: EngineState = { status: 'loading' };
  private lib: NodeLlamaCpp | undefined;
  private llama: Llama | undefined;
  private model: LlamaModel | undefined;
  private context: LlamaContext | undefined;
  private readonly sequences = new ResourcePool<LlamaContextSequence>();
  /** Up to 4 MiB of schema text (64 schemas at the GRAMMAR_MAX_SCHEMA_BYTES default). */
  private gbnf: GbnfBuilder | undefined;
  private readonly grammars = new LRUCache<string, Promise<LlamaGrammar>>({ max: 1000, maxSize: 4 * 1024 * 1024, sizeCalculation: (_grammar, key) => Math.max(1, key.length) });
  /** Resolved once at load: resolving it per request cost ~25-60 ms of time-to-first-token. */
  private chatWrapper: ChatWrapper | undefined;

  constructor(
    private readonly options: LlamaCppOptions,
    private readonly logger: Logger,
  ) {
    this.modelName = modelNameOf(options.model);
  }

  state(): EngineState {
    return this.current;
  }

  get contextSize(): number {
    return this.context?.contextSize ?? this.options.contextSize;
  }

  async load(): Promise<void> {
    const started = Date.now();
    try {
      const file = await resolveGguf(this.options.model, { ...this.options.hf, logger: this.logger, variable: this.options.setting ?? 'model' });
      this.lib = await import('node-llama-cpp');
      this.llama = await this.lib.getLlama({
        gpu: gpuOption(this.options.device),
        build: 'never',
        logLevel: this.lib.LlamaLogLevel.error,
        logger: (level, message) => this.logger.debug({ llama_cpp: level }, message.trim()),
      });
      const gpuLayers = this.options.gpuLayers === 'auto' ? 'auto' : this.options.gpuLayers === 'max' ? 'max' : Number(this.options.gpuLayers);
      this.model = await this.llama.loadModel({ modelPath: file, gpuLayers });
      this.context = await this.model.createContext({
        contextSize: Math.min(this.options.contextSize * this.options.parallel, this.model.trainContextSize * this.options.parallel),
        sequences: this.options.parallel,
        threads: this.options.threads,
      });
      for (let i = 0; i < this.options.parallel; i++) this.sequences.release(this.context.getSequence());
      this.chatWrapper = this.lib.resolveChatWrapper(this.model) ?? new this.lib.GeneralChatWrapper();
      // its worker starts with the first JSON schema (~1-2.5 s once, off the event loop), so a
      // service that never sees one never pays for it
      this.gbnf = new GbnfBuilder(this.lib, this.logger);
      this.current = { status: 'ready' };
      this.logger.info(
        { engine: this.id, model: file, gpu: this.llama.gpu, threads: this.options.threads, parallel: this.options.parallel, context_size: this.context.contextSize, load_ms: Date.now() - started },
        'LLM loaded',
      );
    } catch (error) {
      const detail = error instanceof ModelUnavailableError ? error.message : `failed to load ${this.options.model}: ${(error as Error).message}`;
      this.current = { status: error instanceof ModelUnavailableError ? 'missing_model' : 'error', detail };
      this.logger.error({ engine: this.id, detail }, 'LLM not available');
    }
  }

  /**
   * The grammar for a response format, built once per schema (an LRU keyed by its serialization:
   * repeats and retries of a schema reuse it; one that cannot be built keeps its 400). The schema
   * becomes GBNF text in a worker thread (node-llama-cpp's JS converter); llama.cpp's parser then
   * runs synchronously here (a native constructor node-llama-cpp offers no other way to call) —
   * the schema's bounds (GRAMMAR_*, checked by the generation service) keep that part short.
   */
  private grammarFor(format: ResponseFormat | undefined): Promise<LlamaGrammar> | undefined {
    if (!format || format.type === 'text' || !this.llama) return undefined;
    const key = format.type === 'json_object' ? 'json' : JSON.stringify(format.schema);
    let grammar = this.grammars.get(key);
    if (!grammar) {
      const llama = this.llama;
      const lib = this.lib!;
      const started = performance.now();
      grammar = (
        format.type === 'json_object'
          ? llama.getGrammarFor('json')
          : this.buildGrammar(llama, lib, format.schema)
      ).then(
        (built) => {
          this.logger.debug({ engine: this.id, schema_bytes: key.length, grammar_ms: Math.round(performance.now() - started) }, 'grammar built');
          return built;
        },
        (error: Error) => {
          this.logger.debug({ engine: this.id, schema_bytes: key.length, grammar_ms: Math.round(performance.now() - started), err: error.message }, 'grammar not built');
          throw ApiError.badRequest(`response_format.json_schema is not supported: ${error.message}`, 'response_format');
        },
      );
      grammar.catch(() => undefined); // awaited by each request that uses it
      this.grammars.set(key, grammar);
    }
    return grammar;
  }

  /** The schema's grammar: GBNF text from a worker thread, checked, then parsed by llama.cpp; rejects with why it cannot be. */
  private async buildGrammar(llama: Llama, lib: NodeLlamaCpp, schema: unknown): Promise<LlamaGrammar> {
    const unsupported = grammarProblem(schema);
    if (unsupported) throw new Error(unsupported);
    const text = await this.gbnf!.build(schema);
    const tooManyRepetitions = repetitionProblem(text, this.options.maxGrammarRepetitions ?? 20_000);
    if (tooManyRepetitions) throw new Error(tooManyRepetitions);
    try {
      return await llama.createGrammar({ grammar: text, stopGenerationTriggers: [new lib.LlamaText(JSON_SCHEMA_GRAMMAR_STOP)], trimWhitespaceSuffix: true });
    } catch (error) {
      throw new Error(parseFailure(text, error as Error), { cause: error });
    }
  }

  private history(messages: { role: string; content: string }[]): ChatHistoryItem[] {
    return messages.map((m): ChatHistoryItem =>
      m.role === 'system' ? { type: 'system', text: m.content } : m.role === 'assistant' ? { type: 'model', response: [m.content] } : { type: 'user', text: m.content },
    );
  }

  /** Prompt tokens of `input` as the model will see it (chat template applied). */
  countPromptTokens(input: LlmInput): number {
    const model = this.model!;
    if (input.kind === 'prompt') return model.tokenize(input.prompt).length;
    const { contextText } = this.chatWrapper!.generateContextState({ chatHistory: [...this.history(input.messages), { type: 'model', response: [] }] });
    return contextText.tokenize(model.tokenizer).length;
  }

  async *generate(input: LlmInput, params: GenerationParams, signal: AbortSignal): AsyncIterable<LlmEvent> {
    if (this.current.status !== 'ready' || !this.model || !this.lib) throw ApiError.unavailable(`LLM not ready: ${this.current.detail ?? this.current.status}`, 'engine_unavailable');
    const promptTokens = this.countPromptTokens(input);
    const perSequence = Math.floor(this.contextSize / this.options.parallel);
    if (promptTokens + 1 > perSequence) {
      throw new ApiError(400, 'invalid_request_error', `The prompt is ${promptTokens} tokens; this model's context window is ${perSequence} tokens (LLM_CONTEXT_SIZE).`, { param: input.kind === 'prompt' ? 'prompt' : 'messages', code: 'context_length_exceeded' });
    }
    const maxTokens = Math.min(params.maxTokens, perSequence - promptTokens);
    const grammar = await this.grammarFor(params.responseFormat);
    signal.throwIfAborted(); // the client left while the grammar was built: generate nothing
    const sequence = await this.sequences.acquire(signal);
    // Stopping early — the caller's signal, or the consumer leaving the loop — cancels llama.cpp.
    const stop = new AbortController();
    const onAbort = () => stop.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    const queue = new AsyncQueue<string>();
    const lib = this.lib;
    const options = {
      maxTokens,
      ...samplingOptions(params, this.options.sampling),
      customStopTriggers: params.stop?.length ? params.stop : undefined,
      signal: stop.signal,
      onTextChunk: (text: string) => {
        if (text) queue.push(text);
      },
    };
    const outputBefore = sequence.tokenMeter.usedOutputTokens;
    const run = (async () => {
      try {
        if (input.kind === 'prompt') {
          await sequence.clearHistory();
          const completion = new lib.LlamaCompletion({ contextSequence: sequence });
          const { metadata } = await completion.generateCompletionWithMeta(input.prompt, { ...options, grammar });
          completion.dispose({ disposeSequence: false });
          return metadata.stopReason;
        }
        const chat = new lib.LlamaChat({ contextSequence: sequence, chatWrapper: this.chatWrapper, autoDisposeSequence: false });
        const history: ChatHistoryItem[] = [...this.history(input.messages), { type: 'model', response: [] }];
        const result = await chat.generateResponse(history, { ...options, grammar });
        chat.dispose({ disposeSequence: false });
        return result.metadata.stopReason;
      } finally {
        queue.end();
      }
    })();
    run.catch(() => undefined);
    let text = '';
    try {
      for await (const chunk of queue) {
        text += chunk;
        yield { type: 'delta', text: chunk };
      }
      const stopReason = await run;
      const completionTokens = sequence.tokenMeter.usedOutputTokens - outputBefore;
      const result: GenerationResult = {
        text,
        finishReason: stopReason === 'maxTokens' ? 'length' : 'stop',
        usage: { promptTokens, completionTokens },
        model: this.modelName,
      };
      yield { type: 'done', result };
    } finally {
      signal.removeEventListener('abort', onAbort);
      if (!stop.signal.aborted) stop.abort(new DOMException('generation stopped by its consumer', 'AbortError'));
      // Wait for llama.cpp to let go of the sequence before another request may use it.
      await run.catch(() => undefined);
      this.sequences.release(sequence);
    }
  }

  async close(): Promise<void> {
    this.current = { status: 'disabled', detail: 'closed' };
    await this.gbnf?.close();
    await this.context?.dispose();
    await this.model?.dispose();
    await this.llama?.dispose();
  }
}

/**
 * Why llama.cpp refused a grammar built from a schema: its addon says only "Failed to parse
 * grammar" (the reason goes to stderr). What a converted schema runs into is the parser's
 * repetition limit — `maxItems`/`minItems`/`maxLength`/`minLength` become `{m,n}`, expanded to a
 * rule per repetition and per rule in the repeated item (an array of strings: 2 per item; a bound
 * within MAX_ONE_REPETITION can still pass it with a larger item) — so a large repetition in the
 * grammar is named with that limit; anything else keeps the addon's words.
 */
function parseFailure(grammar: string, error: Error): string {
  const largest = Math.max(0, ...repetitions(grammar));
  if (largest < LLAMA_MAX_REPETITION_RULES / 4) return error.message;
  return `the grammar built from it has a repetition of ${largest} items (from a maxItems, minItems, maxLength or minLength bound), and llama.cpp's grammar parser refuses one that expands to ${LLAMA_MAX_REPETITION_RULES.toLocaleString('en')} grammar rules or more (its MAX_REPETITION_THRESHOLD, built in, not a setting; each repetition costs one rule per rule in the repeated item): keep such bounds lower.`;
}
