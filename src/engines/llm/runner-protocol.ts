/**
 * What the LLM runner (llm-runner.ts) adds to the shared runner protocol (runner/protocol.ts):
 * it loads with the LlamaCppOptions of the inline engine and streams LlmEvents for each request.
 */
import type { GenerationParams, LlmInput } from './types.ts';

export interface LlmRunnerRequest {
  input: LlmInput;
  params: GenerationParams;
}
