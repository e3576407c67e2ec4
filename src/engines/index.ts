/**
 * The composition root for engines: builds each capability's adapter chain from the
 * configuration, once per process.
 */
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import type { Metrics } from '../observability/metrics.ts';
import { LlamaCppEngine, llamaCppOptions } from './llm/llama-cpp.ts';
import { LlamaRunnerEngine } from './llm/llama-runner.ts';
import { OpenAiCompatibleLlm } from './llm/openai-compatible.ts';
import type { LlmEngine } from './llm/types.ts';
import { EngineRegistry } from './registry.ts';
import { runnerSupervision } from './runner/supervision.ts';
import type { SttEngine } from './stt/types.ts';
import { OpenAiCompatibleStt } from './stt/openai-compatible.ts';
import { countingFetch } from '../observability/upstream-fetch.ts';
import { WhisperCppEngine, whisperCppOptions } from './stt/whisper-cpp.ts';
import { WhisperRunnerEngine } from './stt/whisper-runner.ts';
import { EmbeddedEspeakEngine, espeakOptions } from './tts/embedded-espeak.ts';
import { OpenAudioEngine, openAudioOptions } from './tts/openaudio.ts';
import type { TtsEngine } from './tts/types.ts';
import { UnconfiguredEngine } from './types.ts';

export interface EngineDeps {
  logger: Logger;
  metrics: Metrics;
}

export function createLlmChain(config: Config, deps: EngineDeps): LlmEngine[] {
  const logger = deps.logger.child({ capability: 'llm' });
  if (config.LLM_BACKEND === 'openai') return [new OpenAiCompatibleLlm(config, logger, countingFetch(deps.metrics, 'llm'))];
  // LLM_RUNNER=process: llama.cpp in a supervised child process, so a native fault costs a restart, not the service
  return [config.LLM_RUNNER === 'process' ? new LlamaRunnerEngine(llamaCppOptions(config), logger, deps.metrics, runnerSupervision(config)) : new LlamaCppEngine(llamaCppOptions(config), logger)];
}

export function createSttChain(config: Config, deps: EngineDeps): SttEngine[] {
  const logger = deps.logger.child({ capability: 'stt' });
  return config.STT_BACKEND.map((id): SttEngine => {
    if (id === 'local') {
      return config.ENABLE_LOCAL_WHISPER
        ? config.STT_RUNNER === 'process' ? new WhisperRunnerEngine(whisperCppOptions(config), logger, deps.metrics, runnerSupervision(config)) : new WhisperCppEngine(whisperCppOptions(config), logger)
        : (new UnconfiguredEngine('stt', 'whisper-cpp', 'disabled by ENABLE_LOCAL_WHISPER=false') as unknown as SttEngine);
    }
    return new OpenAiCompatibleStt(config, logger, countingFetch(deps.metrics, 'stt'));
  });
}

export function createTtsChain(config: Config, deps: EngineDeps): TtsEngine[] {
  const logger = deps.logger.child({ capability: 'tts' });
  return config.TTS_BACKEND.map((id): TtsEngine => (id === 'openaudio' ? new OpenAudioEngine(openAudioOptions(config), logger, countingFetch(deps.metrics, 'openaudio')) : new EmbeddedEspeakEngine(espeakOptions(config), logger)));
}

export function createEngines(config: Config, deps: EngineDeps): EngineRegistry {
  return new EngineRegistry({ llm: createLlmChain(config, deps), stt: createSttChain(config, deps), tts: createTtsChain(config, deps) }, deps.metrics);
}
