/**
 * The LLM runner: a child process (forked by llama-runner.ts through runner/supervisor.ts) that
 * holds one llama.cpp model through the same LlamaCppEngine the gateway uses inline — its sequence
 * pool, grammar worker thread and grammar cache included — and serves generations over the IPC
 * channel (runner/child.ts).
 */
import { ApiError } from '../../errors.ts';
import { serveRunner } from '../runner/child.ts';
import { LlamaCppEngine, type LlamaCppOptions } from './llama-cpp.ts';
import type { LlmRunnerRequest } from './runner-protocol.ts';
import type { LlmEvent } from './types.ts';

let engine: LlamaCppEngine | undefined;

serveRunner<LlamaCppOptions, LlmRunnerRequest, LlmEvent>('llm-runner', {
  async load(options, logger) {
    engine = new LlamaCppEngine(options, logger);
    await engine.load();
    return engine.state();
  },
  run({ input, params }, signal) {
    if (!engine) throw ApiError.unavailable('LLM runner has no model loaded', 'engine_unavailable');
    return engine.generate(input, params, signal);
  },
  close: () => engine?.close() ?? Promise.resolve(),
});
