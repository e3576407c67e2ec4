/**
 * The composition root for engines: the only place that reads the configuration for them. Each
 * capability has one registry, `backend id → factory`; a factory maps the configuration onto its
 * adapter's own typed options (adapters know nothing of environment variables). Adding an engine is
 * one adapter file and one line here (docs/adding-an-engine.md).
 */
import path from 'node:path';
import type { Logger } from 'pino';
import { computeThreads, ConfigError, type Config } from '../config.ts';
import { hfSettings } from '../models/hugging-face.ts';
import { readModelsFile, type LlmModelEntry, type SttModelEntry, type TtsModelEntry } from '../models/models-file.ts';
import type { Metrics } from '../observability/metrics.ts';
import { countingFetch } from '../observability/upstream-fetch.ts';
import { LlamaCppEngine, type LlamaCppOptions } from './llm/llama-cpp.ts';
import { LlamaRunnerEngine } from './llm/llama-runner.ts';
import { OpenAiCompatibleLlm, type OpenAiCompatibleLlmOptions } from './llm/openai-compatible.ts';
import type { LlmEngine } from './llm/types.ts';
import { accountingDevice, estimateBytes, MIB, type ModelMemory } from './memory-budget.ts';
import { EngineRegistry, type ModelEntry } from './registry.ts';
import type { RunnerSpec } from './runner/supervisor.ts';
import { OpenAiCompatibleStt, type OpenAiCompatibleSttOptions } from './stt/openai-compatible.ts';
import type { SttEngine } from './stt/types.ts';
import { WhisperCppEngine, type WhisperCppOptions } from './stt/whisper-cpp.ts';
import { WhisperRunnerEngine } from './stt/whisper-runner.ts';
import { EmbeddedEspeakEngine, type EspeakOptions } from './tts/embedded-espeak.ts';
import { OpenAudioEngine, type OpenAudioOptions } from './tts/openaudio.ts';
import type { TtsEngine } from './tts/types.ts';
import { UnconfiguredEngine } from './types.ts';

export interface EngineDeps {
  logger: Logger;
  metrics: Metrics;
  /** Where the model was configured, quoted in remedies (default: the environment variable). */
  modelSetting?: string;
}

/** Builds one engine of a capability from the configuration. */
export type EngineFactory<E> = (config: Config, deps: EngineDeps) => E;

// ── config → each adapter's options ─────────────────────────────────────────────────────────────

export function llamaCppOptions(config: Config, setting = 'GEMMA_MODEL'): LlamaCppOptions {
  return {
    model: config.GEMMA_MODEL,
    sampling: { temperature: config.LLM_TEMPERATURE, topK: config.LLM_TOP_K, topP: config.LLM_TOP_P },
    threads: computeThreads(config.LLM_THREADS),
    contextSize: config.LLM_CONTEXT_SIZE,
    parallel: config.LLM_PARALLEL,
    device: config.LLM_DEVICE,
    gpuLayers: config.LLM_GPU_LAYERS,
    hf: hfSettings(config),
    setting,
    maxGrammarRepetitions: config.GRAMMAR_MAX_REPETITIONS,
  };
}

/** The supervision settings of every model runner (RUNNER_*). */
export function runnerSupervision(config: Config): Pick<RunnerSpec, 'backoffMs' | 'hangMs' | 'loadTimeoutMs'> {
  return { backoffMs: config.RUNNER_RESTART_BACKOFF_MS, hangMs: config.RUNNER_HANG_SECONDS * 1000, loadTimeoutMs: config.RUNNER_LOAD_TIMEOUT_SECONDS * 1000 };
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

export function whisperCppOptions(config: Config, setting = 'LOCAL_WHISPER_MODEL'): WhisperCppOptions {
  return {
    model: config.LOCAL_WHISPER_MODEL,
    threads: computeThreads(config.WHISPER_THREADS),
    beamSize: config.WHISPER_BEAM_SIZE,
    parallel: config.STT_PARALLEL,
    hf: hfSettings(config),
    device: config.STT_DEVICE,
    setting,
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
  local: (config, { logger, metrics, modelSetting }) =>
    config.LLM_RUNNER === 'process'
      ? new LlamaRunnerEngine(llamaCppOptions(config, modelSetting), logger, metrics, runnerSupervision(config))
      : new LlamaCppEngine(llamaCppOptions(config, modelSetting), logger),
  openai: (config, { logger, metrics }) => new OpenAiCompatibleLlm(remoteLlmOptions(config), logger, countingFetch(metrics, 'llm')),
};

export const STT_BACKENDS: Record<Config['STT_BACKEND'][number], EngineFactory<SttEngine>> = {
  // STT_RUNNER=process: whisper.cpp in a supervised child process, like the LLM
  local: (config, { logger, metrics, modelSetting }) =>
    !config.ENABLE_LOCAL_WHISPER
      ? (new UnconfiguredEngine('stt', 'whisper-cpp', 'disabled by ENABLE_LOCAL_WHISPER=false') as unknown as SttEngine)
      : config.STT_RUNNER === 'process'
        ? new WhisperRunnerEngine(whisperCppOptions(config, modelSetting), logger, metrics, runnerSupervision(config))
        : new WhisperCppEngine(whisperCppOptions(config, modelSetting), logger),
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

// ── models: one per capability from the variables, or several from MODELS_FILE ────────────────

/** A models-file entry as the configuration its backend's factory reads: the entry's settings over the variables. */
function llmEntryConfig(config: Config, entry: LlmModelEntry): Config {
  return {
    ...config,
    ...(entry.backend === 'openai' ? { LLM_API_BASE: entry.base_url!, LLM_API_KEY: entry.api_key, LLM_MODEL: entry.model } : { GEMMA_MODEL: entry.model }),
    LLM_THREADS: entry.threads ?? config.LLM_THREADS,
    LLM_CONTEXT_SIZE: entry.context ?? config.LLM_CONTEXT_SIZE,
    LLM_PARALLEL: entry.parallel ?? config.LLM_PARALLEL,
    LLM_DEVICE: entry.device ?? config.LLM_DEVICE,
    LLM_GPU_LAYERS: entry.gpu_layers === undefined ? config.LLM_GPU_LAYERS : String(entry.gpu_layers),
  };
}

function ttsEntryConfig(config: Config, entry: TtsModelEntry): Config {
  return entry.backend === 'openaudio'
    ? { ...config, OPENAUDIO_API_BASE: entry.base_url!, OPENAUDIO_API_KEY: entry.api_key, OPENAUDIO_DEFAULT_REFERENCE_ID: entry.voice ?? config.OPENAUDIO_DEFAULT_REFERENCE_ID }
    : { ...config, EMBEDDED_TTS_VOICE: entry.voice ?? config.EMBEDDED_TTS_VOICE, EMBEDDED_TTS_WORKERS: entry.workers ?? config.EMBEDDED_TTS_WORKERS };
}

/** The TTS_BACKENDS id of a models-file voice backend. */
const TTS_FACTORY_IDS = { espeak: 'embedded', openaudio: 'openaudio' } as const;

function sttEntryConfig(config: Config, entry: SttModelEntry): Config {
  return {
    ...config,
    ...(entry.backend === 'openai' ? { OPENAI_API_BASE: entry.base_url!, OPENAI_API_KEY: entry.api_key, OPENAI_WHISPER_MODEL: entry.model } : { LOCAL_WHISPER_MODEL: entry.model, ENABLE_LOCAL_WHISPER: true }),
    WHISPER_THREADS: entry.threads ?? config.WHISPER_THREADS,
    STT_PARALLEL: entry.parallel ?? config.STT_PARALLEL,
    STT_DEVICE: entry.device ?? config.STT_DEVICE,
  };
}

/** The default STT model's name without a models file: its first engine's model. */
function defaultSttId(config: Config): string {
  return config.STT_BACKEND[0] === 'openai' ? config.OPENAI_WHISPER_MODEL : path.basename(config.LOCAL_WHISPER_MODEL).replace(/\.bin$/i, '');
}

/** A local model's device and memory need (MODEL_MEMORY_BUDGET_MB); remote models hold none here. */
function modelMemory(capability: 'llm' | 'stt', spec: string, device: string, memoryMb?: number): ModelMemory {
  return { device: accountingDevice(device), estimatedBytes: estimateBytes(capability, spec), ...(memoryMb === undefined ? {} : { declaredBytes: Math.round(memoryMb * MIB) }) };
}

function defaultLlm(config: Config, deps: EngineDeps): ModelEntry<'llm'> {
  const engines = createLlmChain(config, deps);
  const memory = config.LLM_BACKEND === 'local' ? { memory: modelMemory('llm', config.GEMMA_MODEL, config.LLM_DEVICE) } : {};
  return { id: engines[0]!.modelName, capability: 'llm', aliases: [], preload: true, engines, ...memory };
}

function defaultStt(config: Config, deps: EngineDeps): ModelEntry<'stt'> {
  // the chain's local engine is the one that can hold memory here (the hosted fallback holds none)
  const memory = config.STT_BACKEND[0] === 'local' ? { memory: modelMemory('stt', config.LOCAL_WHISPER_MODEL, config.STT_DEVICE) } : {};
  return { id: defaultSttId(config), capability: 'stt', aliases: [], preload: true, engines: createSttChain(config, deps), ...memory };
}

export function createEngines(config: Config, deps: EngineDeps): EngineRegistry {
  let llm: ModelEntry<'llm'>[];
  let stt: ModelEntry<'stt'>[];
  // absent: TTS_BACKEND's one chain (the registry's default voice model, any name picks it)
  let ttsModels: ModelEntry<'tts'>[] | undefined;
  if (config.MODELS_FILE) {
    const file = config.MODELS_FILE;
    const { models, problems } = readModelsFile(file);
    if (!models) throw new ConfigError(problems);
    llm = models.llm.length === 0 ? [defaultLlm(config, deps)] : models.llm.map((entry, i) => {
      const logger = deps.logger.child({ capability: 'llm', model: entry.id });
      const engine = factoryOf(LLM_BACKENDS, 'LLM', entry.backend)(llmEntryConfig(config, entry), { ...deps, logger, modelSetting: `${file}: llm[${i}].model` });
      const memory = entry.backend === 'local' ? { memory: modelMemory('llm', entry.model, entry.device ?? config.LLM_DEVICE, entry.memory_mb) } : {};
      return { id: entry.id, capability: 'llm', aliases: entry.aliases, preload: entry.preload, engines: [engine], ...memory };
    });
    stt = models.stt.length === 0 ? [defaultStt(config, deps)] : models.stt.map((entry, i) => {
      const logger = deps.logger.child({ capability: 'stt', model: entry.id });
      const engine = factoryOf(STT_BACKENDS, 'STT', entry.backend)(sttEntryConfig(config, entry), { ...deps, logger, modelSetting: `${file}: stt[${i}].model` });
      const memory = entry.backend === 'local' ? { memory: modelMemory('stt', entry.model, entry.device ?? config.STT_DEVICE, entry.memory_mb) } : {};
      return { id: entry.id, capability: 'stt', aliases: entry.aliases, preload: entry.preload, engines: [engine], ...memory };
    });
    ttsModels = models.tts?.map((entry) => {
      const logger = deps.logger.child({ capability: 'tts', model: entry.id });
      const engine = factoryOf(TTS_BACKENDS, 'TTS', TTS_FACTORY_IDS[entry.backend])(ttsEntryConfig(config, entry), { ...deps, logger });
      return { id: entry.id, capability: 'tts', aliases: entry.aliases, preload: true, engines: [engine] };
    });
  } else {
    llm = [defaultLlm(config, deps)];
    stt = [defaultStt(config, deps)];
  }
  // LLM_MODEL_ALIASES name the default LLM, whichever way it was configured
  llm[0] = { ...llm[0]!, aliases: [...llm[0]!.aliases, ...config.LLM_MODEL_ALIASES.filter((a) => !llm.some((m) => m.id === a))] };
  const tts = ttsModels ? ttsModels.flatMap((m) => m.engines) : createTtsChain(config, deps);
  return new EngineRegistry(
    { llm: llm.flatMap((m) => m.engines), stt: stt.flatMap((m) => m.engines), tts },
    deps.metrics,
    { llm, stt, ...(ttsModels ? { tts: ttsModels } : {}), strict: Boolean(config.MODELS_FILE), keepAliveMs: config.MODEL_KEEP_ALIVE, budgets: config.MODEL_MEMORY_BUDGET_MB, loadWaitMs: config.MODEL_LOAD_WAIT_SECONDS * 1000 },
    deps.logger,
  );
}
