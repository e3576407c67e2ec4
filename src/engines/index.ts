/**
 * The composition root for engines: the only place that reads the configuration for them. Each
 * capability has one registry, `backend id → factory`; a factory maps the configuration onto its
 * adapter's own typed options (adapters know nothing of environment variables). Adding an engine is
 * one adapter file and one line here (docs/adding-an-engine.md).
 */
import type { Logger } from 'pino';
import { computeThreads, type Config } from '../config.ts';
import { hfSettings } from '../models/hugging-face.ts';
import type { Metrics } from '../observability/metrics.ts';
import { countingFetch } from '../observability/upstream-fetch.ts';
import { LlamaCppEngine, type LlamaCppOptions } from './llm/llama-cpp.ts';
import { LlamaRunnerEngine } from './llm/llama-runner.ts';
import { OpenAiCompatibleLlm, type OpenAiCompatibleLlmOptions } from './llm/openai-compatible.ts';
import type { LlmEngine } from './llm/types.ts';
import { EngineRegistry } from './registry.ts';
import { OpenAiCompatibleStt, type OpenAiCompatibleSttOptions } from './stt/openai-compatible.ts';
import type { SttEngine } from './stt/types.ts';
import { WhisperCppEngine, type WhisperCppOptions } from './stt/whisper-cpp.ts';
import { EmbeddedEspeakEngine, type EspeakOptions } from './tts/embedded-espeak.ts';
import { OpenAudioEngine, type OpenAudioOptions } from './tts/openaudio.ts';
import type { TtsEngine } from './tts/types.ts';
import { UnconfiguredEngine } from './types.ts';

export interface EngineDeps {
  logger: Logger;
  metrics: Metrics;
}

/** Builds one engine of a capability from the configuration. */
export type EngineFactory<E> = (config: Config, deps: EngineDeps) => E;

// ── config → each adapter's options ─────────────────────────────────────────────────────────────

export function llamaCppOptions(config: Config): LlamaCppOptions {
  return {
    model: config.GEMMA_MODEL,
    sampling: { temperature: config.LLM_TEMPERATURE, topK: config.LLM_TOP_K, topP: config.LLM_TOP_P },
    threads: computeThreads(config.LLM_THREADS),
    contextSize: config.LLM_CONTEXT_SIZE,
    parallel: config.LLM_PARALLEL,
    device: config.LLM_DEVICE,
    gpuLayers: config.LLM_GPU_LAYERS,
    hf: hfSettings(config),
    setting: 'GEMMA_MODEL',
  };
}

export function remoteLlmOptions(config: Config): OpenAiCompatibleLlmOptions {
  return {
    baseUrl: config.LLM_API_BASE,
    apiKey: config.LLM_API_KEY,
    model: config.LLM_MODEL ?? 'unknown', // loadConfig requires it with LLM_BACKEND=openai
    timeoutMs: config.LLM_TIMEOUT_SECONDS * 1000,
    maxRetries: config.LLM_MAX_RETRIES,
    remedy: 'Start the server or fix LLM_API_BASE/LLM_API_KEY',
  };
}

export function whisperCppOptions(config: Config): WhisperCppOptions {
  return {
    model: config.LOCAL_WHISPER_MODEL,
    threads: computeThreads(config.WHISPER_THREADS),
    parallel: config.STT_PARALLEL,
    hf: hfSettings(config),
    device: config.STT_DEVICE,
    setting: 'LOCAL_WHISPER_MODEL',
  };
}

export function remoteSttOptions(config: Config): OpenAiCompatibleSttOptions {
  return {
    baseUrl: config.OPENAI_API_BASE,
    apiKey: config.OPENAI_API_KEY,
    model: config.OPENAI_WHISPER_MODEL,
    responseFormat: config.OPENAI_WHISPER_RESPONSE_FORMAT,
    maxRetries: config.OPENAI_MAX_RETRIES,
    timeoutMs: config.OPENAI_TIMEOUT_SECONDS * 1000,
    remedy: 'set OPENAI_API_KEY (or OPENAI_API_BASE to an OpenAI-compatible server) to enable the hosted fallback',
  };
}

export function espeakOptions(config: Config): EspeakOptions {
  return { workers: config.EMBEDDED_TTS_WORKERS, defaultVoice: config.EMBEDDED_TTS_VOICE };
}

export function openAudioOptions(config: Config): OpenAudioOptions {
  return {
    baseUrl: config.OPENAUDIO_API_BASE,
    apiKey: config.OPENAUDIO_API_KEY,
    ttsPath: config.OPENAUDIO_TTS_PATH,
    defaultReferenceId: config.OPENAUDIO_DEFAULT_REFERENCE_ID,
    defaultNormalize: config.OPENAUDIO_DEFAULT_NORMALIZE,
    timeoutMs: config.OPENAUDIO_TIMEOUT_SECONDS * 1000,
    maxRetries: config.OPENAUDIO_MAX_RETRIES,
  };
}

// ── the registries: one line per backend id (the ids config.ts's enums accept) ─────────────────

export const LLM_BACKENDS: Record<Config['LLM_BACKEND'], EngineFactory<LlmEngine>> = {
  // LLM_RUNNER=process: llama.cpp in a supervised child process, so a native fault costs a restart, not the service
  local: (config, { logger, metrics }) => (config.LLM_RUNNER === 'process' ? new LlamaRunnerEngine(llamaCppOptions(config), logger, metrics) : new LlamaCppEngine(llamaCppOptions(config), logger)),
  openai: (config, { logger, metrics }) => new OpenAiCompatibleLlm(remoteLlmOptions(config), logger, countingFetch(metrics, 'llm')),
};

export const STT_BACKENDS: Record<Config['STT_BACKEND'][number], EngineFactory<SttEngine>> = {
  local: (config, { logger }) =>
    config.ENABLE_LOCAL_WHISPER ? new WhisperCppEngine(whisperCppOptions(config), logger) : (new UnconfiguredEngine('stt', 'whisper-cpp', 'disabled by ENABLE_LOCAL_WHISPER=false') as unknown as SttEngine),
  openai: (config, { logger, metrics }) => new OpenAiCompatibleStt(remoteSttOptions(config), logger, countingFetch(metrics, 'stt')),
};

export const TTS_BACKENDS: Record<Config['TTS_BACKEND'][number], EngineFactory<TtsEngine>> = {
  openaudio: (config, { logger, metrics }) => new OpenAudioEngine(openAudioOptions(config), logger, countingFetch(metrics, 'openaudio')),
  embedded: (config, { logger }) => new EmbeddedEspeakEngine(espeakOptions(config), logger),
};

/** The factory of a backend id; config.ts's enums make an unknown id impossible, this says so loudly if one slips by. */
export function factoryOf<E>(registry: Record<string, EngineFactory<E>>, capability: string, id: string): EngineFactory<E> {
  const factory = Object.hasOwn(registry, id) ? registry[id] : undefined;
  if (!factory) throw new Error(`Unknown ${capability} backend "${id}"; known: ${Object.keys(registry).join(', ')}.`);
  return factory;
}

export function createLlmChain(config: Config, deps: EngineDeps): LlmEngine[] {
  return [factoryOf(LLM_BACKENDS, 'LLM', config.LLM_BACKEND)(config, { ...deps, logger: deps.logger.child({ capability: 'llm' }) })];
}

export function createSttChain(config: Config, deps: EngineDeps): SttEngine[] {
  const scoped = { ...deps, logger: deps.logger.child({ capability: 'stt' }) };
  return config.STT_BACKEND.map((id) => factoryOf(STT_BACKENDS, 'STT', id)(config, scoped));
}

export function createTtsChain(config: Config, deps: EngineDeps): TtsEngine[] {
  const scoped = { ...deps, logger: deps.logger.child({ capability: 'tts' }) };
  return config.TTS_BACKEND.map((id) => factoryOf(TTS_BACKENDS, 'TTS', id)(config, scoped));
}

export function createEngines(config: Config, deps: EngineDeps): EngineRegistry {
  return new EngineRegistry({ llm: createLlmChain(config, deps), stt: createSttChain(config, deps), tts: createTtsChain(config, deps) }, deps.metrics);
}
