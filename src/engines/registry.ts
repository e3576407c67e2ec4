/**
 * The engines of one process, by capability, each an ordered fallback chain. Built once from the
 * configuration by the composition root (`engines/index.ts`), loaded at start-up (the server
 * listens meanwhile and reports `loading`), asked for readiness, and closed on shutdown.
 *
 * LLM and STT engines are grouped into models (one chain each): the request's `model` picks one by
 * id or alias. Without a models file there is one model per capability and it answers any name
 * (`strict: false`, today's behaviour); with one, an unknown name is a 404 listing the ids.
 */
import { ApiError } from '../errors.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { LlmEngine } from './llm/types.ts';
import type { SttEngine } from './stt/types.ts';
import type { TtsEngine } from './tts/types.ts';
import type { Capability, Engine, EngineState } from './types.ts';

export interface EngineChains {
  llm: LlmEngine[];
  stt: SttEngine[];
  tts: TtsEngine[];
}

export interface EngineReport extends EngineState {
  engine: string;
  /** The model this engine serves (LLM and STT). */
  model?: string;
}

/** A model clients can name: its id, its other names, and the engine chain that serves it. */
export interface ModelEntry<C extends ModelCapability = ModelCapability> {
  id: string;
  capability: C;
  aliases: string[];
  /** Loaded at start-up; otherwise on the first request that names it. */
  preload: boolean;
  engines: EngineChains[C];
}

export type ModelCapability = 'llm' | 'stt' | 'tts';

export interface ModelCatalogue {
  /** The first of each is its capability's default. */
  llm: ModelEntry<'llm'>[];
  stt: ModelEntry<'stt'>[];
  /** Voice models of the models file; absent: TTS_BACKEND's chain answers any name (and is not listed). */
  tts?: ModelEntry<'tts'>[];
  /** false: an unknown name picks the default model (one model per capability, no models file). */
  strict: boolean;
  /** How long a model stays loaded after its last request, in ms; -1: forever (MODEL_KEEP_ALIVE). */
  keepAliveMs?: number;
}

/** What GET /v1/models reports of one model. */
export interface ModelReport {
  id: string;
  capability: ModelCapability;
  state: 'loaded' | 'loading' | 'unloaded' | 'error';
  aliases: string[];
  default: boolean;
  memoryBytes?: number;
}

/** Names the OpenAI SDKs and examples send for speech-to-text; they pick the default STT model. */
export const STT_SDK_ALIASES = ['whisper-1', 'gpt-4o-mini-transcribe', 'gpt-4o-transcribe'];

/** Names the OpenAI SDKs send for speech; they pick the default voice model. */
export const TTS_SDK_ALIASES = ['tts-1', 'tts-1-hd', 'gpt-4o-mini-tts'];

/**
 * OpenAI's realtime model names (`gpt-realtime`, `gpt-realtime-mini`, `gpt-4o-realtime-preview*`,
 * `gpt-4o-mini-realtime-preview*`, dated snapshots too): the Realtime SDKs send one by default, so
 * they pick the default LLM rather than 404.
 */
export const isRealtimeSdkModel = (name: string) => /^(gpt-realtime(-mini)?|gpt-4o(-mini)?-realtime-preview)(-\d{4}-\d{2}-\d{2})?$/.test(name);

export interface CapabilityReport {
  /** ready: some engine serves; disabled: nothing configured (does not block readiness). */
  status: 'ready' | 'not_ready' | 'disabled';
  engines: EngineReport[];
}

export interface Readiness {
  ready: boolean;
  capabilities: Record<Capability, CapabilityReport>;
}

const CAPABILITIES: Capability[] = ['llm', 'stt', 'tts'];

export class EngineRegistry {
  private loading: Promise<void> | undefined;
  private readonly catalogue: Required<Pick<ModelCatalogue, 'llm' | 'stt' | 'tts'>> & ModelCatalogue;
  /** Voice models come from the models file (listed, routed strictly); else one chain answers any name. */
  private readonly ttsListed: boolean;
  /** Each engine's load, once started (a model that is not preloaded starts on first use). */
  private readonly loads = new Map<Engine, Promise<void>>();
  /** Requests using each model now, its idle timer, and an unload under way. */
  private readonly inUse = new Map<ModelEntry, number>();
  private readonly idleTimers = new Map<ModelEntry, NodeJS.Timeout>();
  private readonly unloading = new Map<ModelEntry, Promise<void>>();
  /** A request's `keep_alive` overrides MODEL_KEEP_ALIVE for its model from then on (as Ollama does). */
  private readonly keepAlive = new Map<ModelEntry, number>();

  constructor(
    private readonly chains: EngineChains,
    private readonly metrics?: Metrics,
    catalogue?: ModelCatalogue,
  ) {
    const given = catalogue ?? {
      llm: [{ id: chains.llm[0]?.modelName ?? 'default', capability: 'llm', aliases: [], preload: true, engines: chains.llm }],
      stt: [{ id: 'default', capability: 'stt', aliases: [], preload: true, engines: chains.stt }],
      strict: false,
    };
    this.ttsListed = given.tts !== undefined;
    this.catalogue = { ...given, tts: given.tts ?? [{ id: 'default', capability: 'tts', aliases: [], preload: true, engines: chains.tts }] };
  }

  private all(): Engine[] {
    return CAPABILITIES.flatMap((c) => this.chains[c] as Engine[]);
  }

  private load(engine: Engine): Promise<void> {
    let loading = this.loads.get(engine);
    if (!loading) {
      loading = engine.load().then(() => {
        this.metrics?.engineReady.set({ capability: engine.capability, engine: engine.id }, engine.state().status === 'ready' ? 1 : 0);
      });
      this.loads.set(engine, loading);
    }
    return loading;
  }

  /** Engines of models that are not preloaded wait for their first request. */
  private deferred(): Set<Engine> {
    const lazy = [...this.catalogue.llm, ...this.catalogue.stt].filter((m, i, all) => !m.preload && all.findIndex((n) => n.capability === m.capability) !== i);
    return new Set(lazy.flatMap((m) => m.engines as Engine[]));
  }

  /** Starts loading every engine (once), but those of models loaded on demand. Resolves when all have settled; never rejects. */
  start(): Promise<void> {
    const deferred = this.deferred();
    this.loading ??= Promise.all(this.all().filter((e) => !deferred.has(e)).map((e) => this.load(e))).then(() => {
      // loaded and idle: the keep-alive runs from now (MODEL_KEEP_ALIVE; forever by default)
      for (const m of [...this.catalogue.llm, ...this.catalogue.stt]) if (!(m.engines as Engine[]).some((e) => deferred.has(e)) && !this.inUse.has(m)) this.use(m)();
    });
    return this.loading;
  }

  /**
   * The model a request names (undefined: the default): by id, alias, the SDKs' STT names, or —
   * without a models file — any name. 404 `model_not_found` listing the ids otherwise.
   */
  model<C extends ModelCapability>(capability: C, name?: string): ModelEntry<C> {
    const models = this.catalogue[capability] as ModelEntry<C>[];
    const fallback = models[0]!;
    if (name === undefined) return fallback;
    const found = models.find((m) => m.id === name || m.aliases.includes(name));
    if (found) return found;
    if (!this.catalogue.strict || (capability === 'tts' && (!this.ttsListed || TTS_SDK_ALIASES.includes(name)))) return fallback;
    if ((capability === 'stt' && STT_SDK_ALIASES.includes(name)) || (capability === 'llm' && isRealtimeSdkModel(name))) return fallback;
    const ids = models.map((m) => m.id).join(', ');
    throw new ApiError(404, 'not_found_error', `The model '${name}' does not exist on this server; ${NAMES[capability]} models: ${ids} (see GET /v1/models).`, { param: 'model', code: 'model_not_found' });
  }

  /**
   * Resolves the named model and waits for it to load when it is loaded on demand (load never throws:
   * its state tells). `keepAliveMs` (the request's `keep_alive`; -1: forever) becomes the model's keep-alive.
   */
  async prepare<C extends ModelCapability>(capability: C, name?: string, keepAliveMs?: number): Promise<ModelEntry<C>> {
    const entry = this.model(capability, name);
    if (keepAliveMs !== undefined) this.keepAlive.set(entry, keepAliveMs);
    await this.unloading.get(entry);
    await Promise.all((entry.engines as Engine[]).map((e) => this.load(e)));
    return entry;
  }

  /**
   * Throws before any work what a request for this model would get: 404 for an unknown name, the
   * 503 envelope when none of its engines is ready. A model loaded on demand passes before its first
   * request (that request loads it).
   */
  assertServes(capability: ModelCapability, name?: string): void {
    const entry = this.model(capability, name);
    if ((entry.engines as Engine[]).some((e) => this.loads.has(e))) this.ready(capability, entry.id);
  }

  /**
   * Marks the model in use until the returned function is called; then, idle, it stays loaded for
   * the keep-alive (MODEL_KEEP_ALIVE) and is unloaded (only adapters that can unload: runner processes).
   */
  use(entry: ModelEntry): () => void {
    clearTimeout(this.idleTimers.get(entry));
    this.idleTimers.delete(entry);
    this.inUse.set(entry, (this.inUse.get(entry) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.inUse.get(entry) ?? 1) - 1;
      this.inUse.set(entry, left);
      const keepAlive = this.keepAlive.get(entry) ?? this.catalogue.keepAliveMs ?? -1;
      if (left > 0 || keepAlive < 0 || !this.unloadable(entry)) return;
      const timer = setTimeout(() => void this.unload(entry).catch(() => undefined), keepAlive);
      timer.unref();
      this.idleTimers.set(entry, timer);
    };
  }

  /** Marks the model in use, then waits for `admit` (a slot); the one function returned releases both. */
  async hold(entry: ModelEntry, admit: () => Promise<() => void>): Promise<() => void> {
    const idle = this.use(entry); // held from before the queue: the keep-alive must not unload it meanwhile
    try {
      const release = await admit();
      return () => {
        release();
        idle();
      };
    } catch (error) {
      idle();
      throw error;
    }
  }

  private unloadable(entry: ModelEntry): boolean {
    return (entry.engines as Engine[]).every((e) => typeof e.unload === 'function');
  }

  private byId(id: string): ModelEntry {
    const entry = [...this.catalogue.llm, ...this.catalogue.stt, ...(this.ttsListed ? this.catalogue.tts : [])].find((m) => m.id === id || m.aliases.includes(id));
    if (!entry) throw new ApiError(404, 'not_found_error', `The model '${id}' does not exist on this server (see GET /v1/models).`, { param: 'model', code: 'model_not_found' });
    return entry;
  }

  /** POST /v1/models/{id}/load: loads a model now (for operators); resolves when it has settled. */
  async loadModel(id: string): Promise<ModelReport> {
    const entry = this.byId(id);
    await this.prepare(entry.capability, entry.id);
    this.use(entry)(); // idle from now: the keep-alive runs
    return this.report(entry);
  }

  /** POST /v1/models/{id}/unload: frees a model's memory now; 409 while requests use it. */
  async unloadModel(id: string): Promise<ModelReport> {
    const entry = this.byId(id);
    if (!this.unloadable(entry)) throw new ApiError(409, 'invalid_request_error', `The model '${entry.id}' cannot be unloaded: its engine does not run in a runner process of its own.`, { param: 'model', code: 'model_not_unloadable' });
    if ((this.inUse.get(entry) ?? 0) > 0) throw new ApiError(409, 'invalid_request_error', `The model '${entry.id}' is serving requests; unload it when they are done.`, { param: 'model', code: 'model_busy' });
    await this.unload(entry);
    return this.report(entry);
  }

  private async unload(entry: ModelEntry): Promise<void> {
    if ((this.inUse.get(entry) ?? 0) > 0) return; // a request came in meanwhile
    clearTimeout(this.idleTimers.get(entry));
    this.idleTimers.delete(entry);
    const engines = (entry.engines as Engine[]).filter((e) => this.loads.has(e));
    if (engines.length === 0) return;
    const done = (async () => {
      await Promise.all(engines.map((e) => this.loads.get(e) ?? Promise.resolve())); // a load under way settles first
      await Promise.all(engines.map((e) => (e.unload ? e.unload() : Promise.resolve())));
      for (const e of engines) this.loads.delete(e);
    })().finally(() => this.unloading.delete(entry));
    this.unloading.set(entry, done);
    await done;
  }

  private report(entry: ModelEntry): ModelReport {
    const listed = this.models().find((m) => m.id === entry.id && m.capability === entry.capability);
    return listed ?? { id: entry.id, capability: entry.capability, state: 'unloaded', aliases: entry.aliases, default: this.catalogue[entry.capability][0] === entry };
  }

  /** Every configured model of LLM and STT (and TTS when the models file names voice models), with its state and memory where known. */
  models(): ModelReport[] {
    return (this.ttsListed ? (['llm', 'stt', 'tts'] as const) : (['llm', 'stt'] as const)).flatMap((capability) =>
      (this.catalogue[capability] as ModelEntry[]).flatMap((m, i): ModelReport[] => {
        const engines = m.engines as Engine[];
        const statuses = engines.map((e) => e.state().status);
        const started = engines.some((e) => this.loads.has(e)) && !this.unloading.has(m);
        if (started && statuses.every((s) => s === 'disabled')) return []; // switched off (ENABLE_LOCAL_WHISPER=false, no key): not offered
        const state = !started
          ? 'unloaded'
          : statuses.includes('ready')
            ? 'loaded'
            : statuses.some((s) => s === 'loading' || s === 'restarting')
              ? 'loading'
              : 'error';
        const memory = engines.reduce((sum, e) => sum + (e.memoryBytes?.() ?? 0), 0);
        return [{ id: m.id, capability, state, aliases: m.aliases, default: i === 0, ...(memory > 0 ? { memoryBytes: memory } : {}) }];
      }),
    );
  }

  readiness(): Readiness {
    const capabilities = {} as Record<Capability, CapabilityReport>;
    const modelOf = new Map<Engine, string>();
    if (this.catalogue.strict) for (const m of [...this.catalogue.llm, ...this.catalogue.stt, ...(this.ttsListed ? this.catalogue.tts : [])]) for (const e of m.engines as Engine[]) modelOf.set(e, m.id);
    const deferred = this.deferred();
    for (const capability of CAPABILITIES) {
      const engines = (this.chains[capability] as Engine[]).map((e): EngineReport => {
        const model = modelOf.has(e) ? { model: modelOf.get(e) } : {};
        // a model loaded on demand does not hold readiness back before its first request
        if (deferred.has(e) && !this.loads.has(e)) return { engine: e.id, ...model, status: 'disabled', detail: 'not loaded yet (preload: false): loads on the first request that names it' };
        const { log, ...state } = e.state();
        // operator-only log lines join the detail here (/health/ready shows detail to valid keys only)
        return { engine: e.id, ...model, ...state, ...(log ? { detail: state.detail ? `${state.detail}\n${log}` : log } : {}) };
      });
      const status = engines.some((e) => e.status === 'ready')
        ? 'ready'
        : engines.every((e) => e.status === 'disabled')
          ? 'disabled'
          : 'not_ready';
      capabilities[capability] = { status, engines };
    }
    return { ready: CAPABILITIES.every((c) => capabilities[c].status !== 'not_ready'), capabilities };
  }

  /** Every engine configured for a capability, ready or not, in fallback order. */
  configured<C extends Capability>(capability: C): EngineChains[C] {
    return this.chains[capability];
  }

  /** The engines of a capability (of its named model, or its default) that are ready now, in fallback order; 503 envelope when none is. */
  ready<C extends Capability>(capability: C, model?: string): EngineChains[C] {
    const chain = this.model(capability, model).engines as Engine[];
    const ready = chain.filter((e) => e.state().status === 'ready');
    if (ready.length > 0) return ready as EngineChains[C];
    const why = chain.map((e) => `${e.id}: ${describe(e.state())}`).join('; ') || 'no engine configured';
    const code = chain.some((e) => e.state().status === 'restarting')
      ? 'engine_restarting'
      : chain.some((e) => e.state().status === 'loading')
      ? 'engine_loading'
      : chain.some((e) => e.state().status === 'missing_model')
        ? 'model_missing'
        : chain.every((e) => e.state().status === 'disabled')
          ? 'engine_not_configured'
          : 'engine_unavailable';
    const message = `The ${NAMES[capability]} engine is not available (${why}).`;
    // a restart takes about a second, a model load a few: say when to come back
    const retryAfter = code === 'engine_restarting' ? '1' : code === 'engine_loading' ? '5' : undefined;
    throw new ApiError(503, 'server_error', message, { code, ...(retryAfter ? { headers: { 'Retry-After': retryAfter } } : {}) });
  }

  async close(): Promise<void> {
    for (const timer of this.idleTimers.values()) clearTimeout(timer);
    await Promise.allSettled(this.all().map((e) => e.close()));
  }
}

const NAMES: Record<Capability, string> = { llm: 'text-generation', stt: 'speech-to-text', tts: 'text-to-speech' };

function describe(state: EngineState): string {
  return state.detail ? `${state.status.replace('_', ' ')}: ${state.detail}` : state.status.replace('_', ' ');
}
