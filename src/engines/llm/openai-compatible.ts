/**
 * The remote LLM: any OpenAI-compatible server (vLLM across GPUs/nodes, Ollama, llama.cpp server,
 * OpenAI) through the official `openai` SDK, which retries 408/409/429/5xx and connection errors
 * with exponential backoff (`maxRetries`) and bounds each request (`timeoutMs`).
 * Streams pass through chunk by chunk. Upstream errors map onto our envelope (engines/openai-errors.ts):
 * an upstream 4xx → 400 with its message (401/403 → 502, 429 → 429), 5xx/connection → 502, timeout → 504.
 */
import type OpenAI from 'openai';
import type { Logger } from 'pino';
import { ApiError } from '../../errors.ts';
import { openAiClient, upstreamError, type OpenAiUpstreamOptions } from '../openai-errors.ts';
import type { EngineState } from '../types.ts';
import type { GenerationParams, LlmEngine, LlmEvent, LlmInput } from './types.ts';

const RECHECK_MS = 10_000;

/** Connection settings only: sampling is left to the server's defaults unless a request sets it. */
export type OpenAiCompatibleLlmOptions = OpenAiUpstreamOptions;

export class OpenAiCompatibleLlm implements LlmEngine {
  readonly id = 'openai';
  readonly capability = 'llm' as const;
  readonly modelName: string;
  private readonly client: OpenAI;
  private current: EngineState = { status: 'loading' };
  private recheck: NodeJS.Timeout | undefined;
  private readonly upstream: string;
  private readonly remedy: string;

  constructor(
    options: OpenAiCompatibleLlmOptions,
    private readonly logger: Logger,
    fetchImpl: typeof fetch = globalThis.fetch,
  ) {
    this.modelName = options.model;
    this.upstream = `LLM server ${options.baseUrl}`;
    this.remedy = options.remedy ?? 'Start the server or fix its base URL and key';
    this.client = openAiClient(options, fetchImpl);
  }

  state(): EngineState {
    return this.current;
  }

  /** Checks the server answers GET /models; keeps re-checking in the background until it does. */
  async load(): Promise<void> {
    try {
      await this.client.models.list({ maxRetries: 0, timeout: 5000 });
      this.current = { status: 'ready' };
    } catch (error) {
      const reason = (upstreamError(error, this.upstream) as Error).message;
      this.current = { status: 'error', detail: `${reason} ${this.remedy}; re-checking every ${RECHECK_MS / 1000} s.` };
      this.logger.warn({ engine: this.id, detail: this.current.detail }, 'remote LLM not reachable');
      this.recheck = setTimeout(() => void this.load(), RECHECK_MS);
      this.recheck.unref();
    }
  }

  async *generate(input: LlmInput, params: GenerationParams, signal: AbortSignal): AsyncIterable<LlmEvent> {
    const common = {
      model: this.modelName,
      max_tokens: params.maxTokens,
      temperature: params.temperature,
      top_p: params.topP,
      seed: params.seed,
      presence_penalty: params.presencePenalty,
      frequency_penalty: params.frequencyPenalty,
      stop: params.stop,
      stream: true as const,
      stream_options: { include_usage: true },
      ...(params.topK !== undefined ? { top_k: params.topK } : {}),
    };
    let text = '';
    let finish: 'stop' | 'length' | undefined;
    let usage = { promptTokens: 0, completionTokens: 0 };
    try {
      if (input.kind === 'chat') {
        const response_format =
          params.responseFormat?.type === 'json_schema'
            ? { type: 'json_schema' as const, json_schema: { name: 'response', schema: params.responseFormat.schema } }
            : params.responseFormat;
        const stream = await this.client.chat.completions.create({ ...common, messages: input.messages, ...(response_format ? { response_format } : {}) }, { signal });
        for await (const chunk of stream) {
          const choice = chunk.choices[0];
          const delta = choice?.delta?.content;
          if (delta) {
            text += delta;
            yield { type: 'delta', text: delta };
          }
          if (choice?.finish_reason) finish = choice.finish_reason === 'length' ? 'length' : 'stop';
          if (chunk.usage) usage = { promptTokens: chunk.usage.prompt_tokens, completionTokens: chunk.usage.completion_tokens };
        }
      } else {
        const stream = await this.client.completions.create({ ...common, prompt: input.prompt }, { signal });
        for await (const chunk of stream) {
          const choice = chunk.choices[0];
          if (choice?.text) {
            text += choice.text;
            yield { type: 'delta', text: choice.text };
          }
          if (choice?.finish_reason) finish = choice.finish_reason === 'length' ? 'length' : 'stop';
          if (chunk.usage) usage = { promptTokens: chunk.usage.prompt_tokens, completionTokens: chunk.usage.completion_tokens };
        }
      }
    } catch (error) {
      const mapped = upstreamError(error, this.upstream);
      if (mapped !== error || signal.aborted) throw mapped;
      // A stream that breaks halfway surfaces as a plain fetch error ("terminated").
      throw new ApiError(502, 'upstream_error', `${this.upstream} broke off the stream (${(error as Error).message}).`, { code: 'upstream_stream_broken', cause: error });
    }
    // every OpenAI-compatible server ends a stream with a finish_reason; none means the answer was not a stream of chunks
    if (finish === undefined) throw new ApiError(502, 'upstream_error', `${this.upstream} ended its answer without a finish_reason: not an OpenAI-compatible stream (check its base URL).`, { code: 'upstream_bad_response' });
    yield { type: 'done', result: { text, finishReason: finish, usage, model: this.modelName } };
  }

  async close(): Promise<void> {
    clearTimeout(this.recheck);
  }
}
