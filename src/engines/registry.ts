/**
 * The engines of one process, by capability, each an ordered fallback chain. Built once from the
 * configuration by the composition root (`engines/index.ts`), loaded at start-up (the server
 * listens meanwhile and reports `loading`), asked for readiness, and closed on shutdown.
 *
 * LLM and STT engines are grouped into models (one chain each): the request's `model` picks one by
 * id or alias. Without a models file there is one model per capability and it answers any name
 * (`strict: false`, today's behaviour); with one, an unknown name is a 404 listing the ids.
 */
import type { Logger } from 'pino';
import { Gauge } from 'prom-client';
import { ApiError } from '../errors.ts';
import { STT_SDK_ALIASES } from '../models/models-file.ts';
import type { Metrics } from '../observability/metrics.ts';
import { budgetOf, DeviceLocks, MIB, needBytes, type MemoryBudgets, type ModelMemory } from './memory-budget.ts';
import type { LlmEngine } from './llm/types.ts';
import type { SttEngine } from './stt/types.ts';
import type { TtsEngine } from './tts/types.ts';
import { retryAfterSeconds, type Capability, type Engine, type EngineState } from './types.ts';

export interface EngineChains {
  llm: LlmEngine[];
  stt: SttEngine[];
  tts: TtsEngine[];
}

export interface EngineReport extends Omit<EngineState, 'status'> {
  /** `unloaded`: a model loaded on demand that is not loaded now (not yet, or unloaded since); it loads on the next request. */
  status: EngineState['status'] | 'unloaded';
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
  /** Its device and memory need (local models); runner-process models count against MODEL_MEMORY_BUDGET_MB. */
  memory?: ModelMemory;
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
  /** MODEL_MEMORY_BUDGET_MB, in bytes; undefined: no budget. */
  budgets?: MemoryBudgets;
  /** How long a request waits for its model to load (MODEL_LOAD_WAIT_SECONDS); undefined: until it settles. */
  loadWaitMs?: number;
}

/** Why a runner model was unloaded (runner_evictions_total). */
export type UnloadReason = 'budget' | 'keep_alive' | 'operator';

/** What GET /v1/models reports of one model. */
export interface ModelReport {
  id: string;
  capability: ModelCapability;
  /** `unloading`: its runner is stopping (it holds its memory until the process is gone). */
  state: 'loaded' | 'loading' | 'unloading' | 'unloaded' | 'error';
  aliases: string[];
  default: boolean;
  /** What it holds now, as the budget accounts it (undefined while unloaded). */
  memoryBytes?: number;
  /** What loading it counts against its device's budget (memory_mb, or the estimate / measured RSS). */
  memoryNeedBytes?: number;
  device?: string;
}

/** A device's budget and what the models loaded there hold (GET /v1/models, metrics). */
export interface DeviceMemory {
  device: string;
  budgetBytes: number;
  usedBytes: number;
}

export { STT_SDK_ALIASES };

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
  /** The RSS each model's runners last held (what it needs when loaded again). */
  private readonly lastMeasured = new Map<ModelEntry, number>();
  /** A request's `keep_alive` overrides MODEL_KEEP_ALIVE for its model from then on (as Ollama does). */
  private readonly keepAlive = new Map<ModelEntry, number>();
  /** Engines whose load has settled (loaded or failed for good). */
  private readonly settled = new Set<Engine>();
  /** When each model was last used or loaded: the least recent idle one is evicted first. */
  private readonly lastUsed = new Map<ModelEntry, number>();
  /** Requests between their model's admission and taking hold of it: not idle, so not evictable. */
  private readonly preparing = new Map<ModelEntry, number>();
  /** Preloads that did not fit their device's budget at start-up: loaded on their first request instead. */
  private readonly refused = new Set<ModelEntry>();
  /** Models unloaded (keep-alive, budget, operator) and not started again since. */
  private readonly unloaded = new Set<ModelEntry>();
  private readonly locks = new DeviceLocks();
  private readonly evictions: ReturnType<Metrics['counter']> | undefined;

  constructor(
    private readonly chains: EngineChains,
    private readonly metrics?: Metrics,
    catalogue?: ModelCatalogue,
    private readonly logger?: Logger,
  ) {
    const given = catalogue ?? {
      llm: [{ id: chains.llm[0]?.modelName ?? 'default', capability: 'llm', aliases: [], preload: true, engines: chains.llm }],
      stt: [{ id: 'default', capability: 'stt', aliases: [], preload: true, engines: chains.stt }],
      strict: false,
    };
    this.ttsListed = given.tts !== undefined;
    this.catalogue = { ...given, tts: given.tts ?? [{ id: 'default', capability: 'tts', aliases: [], preload: true, engines: chains.tts }] };
    this.evictions = metrics?.counter('runner_evictions_total', 'Model runners unloaded, by model and reason: `budget` (evicted to fit another model under MODEL_MEMORY_BUDGET_MB), `keep_alive` (idle past its keep-alive), `operator` (POST /v1/models/{id}/unload).', ['model', 'reason']);
    if (metrics && this.catalogue.budgets) this.budgetGauges(metrics);
  }

  private budgetGauges(metrics: Metrics): void {
    if (metrics.registry.getSingleMetric('model_memory_budget_bytes')) return;
    const memory = () => this.memory();
    new Gauge({
      name: 'model_memory_budget_bytes',
      help: 'MODEL_MEMORY_BUDGET_MB of each device, in bytes.',
      labelNames: ['device'] as const,
      registers: [metrics.registry],
      collect() {
        for (const d of memory()) this.set({ device: d.device }, d.budgetBytes);
      },
    });
    new Gauge({
      name: 'model_memory_used_bytes',
      help: 'Memory the runner models loaded (or loading) on each budgeted device hold, as the budget accounts it.',
      labelNames: ['device'] as const,
      registers: [metrics.registry],
      collect() {
        for (const d of memory()) this.set({ device: d.device }, d.usedBytes);
      },
    });
  }

  private all(): Engine[] {
    return CAPABILITIES.flatMap((c) => this.chains[c] as Engine[]);
  }

  private load(engine: Engine): Promise<void> {
    let loading = this.loads.get(engine);
    if (!loading) {
      loading = engine.load().then(() => {
        if (this.loads.get(engine) === loading) this.settled.add(engine);
        this.metrics?.engineReady.set({ capability: engine.capability, engine: engine.id }, engine.state().status === 'ready' ? 1 : 0);
      });
      this.loads.set(engine, loading);
    }
    return loading;
  }

  /** Engines of models that are not preloaded wait for their first request. */
  private deferred(): Set<Engine> {
    const lazy = [...this.catalogue.llm, ...this.catalogue.stt].filter((m, i, all) => this.refused.has(m) || (!m.preload && all.findIndex((n) => n.capability === m.capability) !== i));
    return new Set(lazy.flatMap((m) => m.engines as Engine[]));
  }

  /** Starts loading every engine (once), but those of models loaded on demand. Resolves when all have settled; never rejects. */
  start(): Promise<void> {
    if (this.loading) return this.loading;
    const deferred = this.deferred();
    const entries = [...this.catalogue.llm, ...this.catalogue.stt];
    const budgeted = entries.filter((m) => this.budgetOf(m) !== undefined);
    for (const m of budgeted) {
      // refused on request, not at start-up: the operator may mean to raise the budget or memory_mb
      const budget = this.budgetOf(m)!;
      if (this.need(m) > budget) this.logger?.warn({ model: m.id, need_mb: mb(this.need(m)), device: m.memory!.device, budget_mb: mb(budget) }, `model '${m.id}' needs more memory than MODEL_MEMORY_BUDGET_MB allows on ${m.memory!.device}; requests for it will get 503 insufficient_memory`);
    }
    const plain = this.all().filter((e) => !deferred.has(e) && !budgeted.some((m) => (m.engines as Engine[]).includes(e)));
    // preloads under a budget go through admission (in order, one device decision at a time) but evict nothing
    const preloads = budgeted.filter((m) => !(m.engines as Engine[]).some((e) => deferred.has(e)));
    const admitted = preloads.map((m) =>
      this.admit(m, false).then(
        () => Promise.all((m.engines as Engine[]).map((e) => this.loads.get(e) ?? Promise.resolve())),
        (error: unknown) => {
          this.refused.add(m);
          this.logger?.warn({ model: m.id, reason: (error as Error).message }, `model '${m.id}' not preloaded: it does not fit MODEL_MEMORY_BUDGET_MB next to the models loaded before it; it loads on its first request`);
        },
      ),
    );
    this.loading = Promise.all([...plain.map((e) => this.load(e)), ...admitted]).then(() => {
      // loaded and idle: the keep-alive runs from now (MODEL_KEEP_ALIVE; forever by default)
      for (const m of entries) if (!(m.engines as Engine[]).some((e) => this.deferred().has(e)) && !this.inUse.has(m)) this.use(m)();
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
   * its state tells).
   */
  async prepare<C extends ModelCapability>(capability: C, name?: string, signal?: AbortSignal): Promise<ModelEntry<C>> {
    const entry = this.model(capability, name);
    this.preparing.set(entry, (this.preparing.get(entry) ?? 0) + 1);
    try {
      await this.unloading.get(entry);
      await this.admit(entry, true);
      // one bound for the whole wait: a runner that crashes right after its load must not double it
      const waitMs = this.catalogue.loadWaitMs;
      const deadline = waitMs === undefined ? undefined : Date.now() + waitMs;
      await this.loaded(entry, signal, waitMs, deadline);
      await this.restarted(entry, signal, deadline);
    } finally {
      // the caller takes hold of the model (use()) in the same turn; until then it must not look idle
      setImmediate(() => this.preparing.set(entry, (this.preparing.get(entry) ?? 1) - 1));
    }
    return entry;
  }

  /**
   * Waits for the model's load to settle: until `deadline` (then 503 `engine_loading` naming the
   * `waitMs` bound, the load goes on for whoever comes next), and no longer than the client stays (an
   * abort stops this wait only). No deadline: as long as the load takes.
   */
  private async loaded(entry: ModelEntry, signal: AbortSignal | undefined, waitMs: number | undefined, deadline: number | undefined): Promise<void> {
    const engines = entry.engines as Engine[];
    if (engines.every((e) => this.settled.has(e))) return;
    const loads = Promise.all(engines.map((e) => this.loads.get(e) ?? Promise.resolve()));
    const tooLong = () => new ApiError(503, 'server_error', `The model '${entry.id}' is still loading (waited ${Math.round((waitMs ?? 0) / 1000)} s, MODEL_LOAD_WAIT_SECONDS); try again shortly.`, { code: 'engine_loading', headers: { 'Retry-After': '5' } });
    const left = deadline === undefined ? undefined : deadline - Date.now();
    if (left !== undefined && left <= 0) throw tooLong();
    signal?.throwIfAborted();
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    try {
      await Promise.race([
        loads,
        new Promise<never>((_, reject) => {
          if (left !== undefined) timer = setTimeout(() => reject(tooLong()), left);
          onAbort = () => reject(signal!.reason);
          signal?.addEventListener('abort', onAbort, { once: true });
        }),
      ]);
    } finally {
      clearTimeout(timer);
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Its runner crashed and is being started again (backoff, then its load), and nothing else of its chain is ready. */
  private restarting(entry: ModelEntry): boolean {
    const engines = entry.engines as Engine[];
    if (engines.some((e) => e.state().status === 'ready')) return false;
    return engines.some((e) => e.state().status === 'restarting' || (e.state().status === 'loading' && this.settled.has(e)));
  }

  /**
   * A request that finds its model's runner restarting after a crash waits for it as for a load
   * (until `deadline`, what is left of MODEL_LOAD_WAIT_SECONDS; no longer than the client stays) instead of being
   * refused at once: the restart takes seconds (backoff, then the model's load). Still restarting
   * after that, or given up on, the request gets the 503 of ready(). Only the requests the runner
   * was serving when it died fail (engine_restarting).
   */
  private async restarted(entry: ModelEntry, signal: AbortSignal | undefined, deadline: number | undefined): Promise<void> {
    while (this.restarting(entry) && (deadline === undefined || Date.now() < deadline)) {
      signal?.throwIfAborted();
      await new Promise((r) => setTimeout(r, 50)); // a runner says nothing when it is up again: look
    }
  }

  /** The budget of the model's device when it counts against one (runner-process models only). */
  private budgetOf(entry: ModelEntry): number | undefined {
    return entry.memory && this.unloadable(entry) ? budgetOf(this.catalogue.budgets, entry.memory.device) : undefined;
  }

  /**
   * What the model counts against its device (memory_mb, else the larger of its estimate and its
   * runner's RSS). The RSS last measured is kept when the runner is gone (unloaded, evicted): the
   * file-size estimate alone can be far below what the model held, and loading it again on that
   * figure would overrun the budget.
   */
  private need(entry: ModelEntry): number {
    const now = (entry.engines as Engine[]).reduce((sum, e) => sum + (e.memoryBytes?.() ?? 0), 0);
    if (now > 0) this.lastMeasured.set(entry, now);
    const measured = now || (this.lastMeasured.get(entry) ?? 0);
    return entry.memory ? needBytes(entry.memory, measured) : measured;
  }

  private started(entry: ModelEntry): boolean {
    return (entry.engines as Engine[]).some((e) => this.loads.has(e)) && !this.unloading.has(entry);
  }

  /** What a model holds now: its need while started, unless its load failed for good (no process). */
  private holds(entry: ModelEntry): number {
    if (!this.started(entry)) return 0;
    const gone = (entry.engines as Engine[]).every((e) => ['error', 'missing_model', 'disabled'].includes(e.state().status));
    return gone ? 0 : this.need(entry);
  }

  /** In use, about to be, or loading: never evicted. */
  private busy(entry: ModelEntry): boolean {
    return (this.inUse.get(entry) ?? 0) > 0 || (this.preparing.get(entry) ?? 0) > 0 || (entry.engines as Engine[]).some((e) => !this.settled.has(e) || e.state().status === 'restarting');
  }

  private onDevice(device: string): ModelEntry[] {
    return [...this.catalogue.llm, ...this.catalogue.stt].filter((m) => m.memory?.device === device && this.unloadable(m));
  }

  /**
   * Starts the model's load, first making room under its device's budget: unloads least recently
   * used idle runner models there until it fits (`evict`; not at start-up), else 503
   * `insufficient_memory`. One decision per device at a time, and the model counts from the moment
   * its load starts, so two loads cannot both pass the check.
   */
  private async admit(entry: ModelEntry, evict: boolean): Promise<void> {
    const start = () => {
      this.unloaded.delete(entry);
      for (const e of entry.engines as Engine[]) void this.load(e);
      this.lastUsed.set(entry, Date.now());
    };
    const budget = this.budgetOf(entry);
    if (budget === undefined || this.started(entry)) return start();
    const device = entry.memory!.device;
    await this.locks.run(device, async () => {
      await Promise.all(this.onDevice(device).map((m) => this.unloading.get(m) ?? Promise.resolve())); // memory being freed is not free yet
      if (this.started(entry)) return start(); // another request loaded it meanwhile
      const need = this.need(entry);
      if (need > budget) {
        throw new ApiError(503, 'server_error', `The model '${entry.id}' needs ${mb(need)} MiB on ${device}, more than MODEL_MEMORY_BUDGET_MB allows there (${mb(budget)} MiB): it cannot be loaded on this server.`, { param: 'model', code: 'insufficient_memory' });
      }
      const others = () => this.onDevice(device).filter((m) => m !== entry);
      const used = () => others().reduce((sum, m) => sum + this.holds(m), 0);
      // what busy models hold stays held: when that alone leaves no room, evicting idle ones would not help
      const pinned = others().reduce((sum, m) => sum + (this.busy(m) ? this.holds(m) : 0), 0);
      const tried = new Set<ModelEntry>();
      while (evict && pinned + need <= budget && used() + need > budget) {
        const victim = others()
          .filter((m) => !tried.has(m) && this.holds(m) > 0 && !this.busy(m))
          .sort((a, b) => (this.lastUsed.get(a) ?? 0) - (this.lastUsed.get(b) ?? 0))[0];
        if (!victim) break;
        tried.add(victim);
        this.logger?.info({ model: victim.id, for_model: entry.id, device, need_mb: mb(need), budget_mb: mb(budget) }, `unloading idle model '${victim.id}' to make room for '${entry.id}' (MODEL_MEMORY_BUDGET_MB)`);
        await this.unload(victim, 'budget');
      }
      if (used() + need > budget) {
        const holders = others().filter((m) => this.holds(m) > 0);
        const list = holders.map((m) => `${m.id}: ${mb(this.holds(m))} MiB${this.busy(m) ? ' (busy)' : ''}`).join(', ');
        const busy = holders.some((m) => this.busy(m));
        throw new ApiError(
          503,
          'server_error',
          `The model '${entry.id}' needs ${mb(need)} MiB on ${device}; MODEL_MEMORY_BUDGET_MB allows ${mb(budget)} MiB there and ${mb(used())} MiB are held by ${list}. ${busy ? 'Models serving requests are not unloaded; try again when they are done.' : 'Nothing there can be unloaded now.'}`,
          { param: 'model', code: 'insufficient_memory', ...(busy ? { headers: { 'Retry-After': '5' } } : {}) },
        );
      }
      start();
    });
  }

  /**
   * Throws before any work what a request for this model would get: 404 for an unknown name, the
   * 503 envelope when none of its engines is ready. A model loaded on demand passes before its first
   * request (that request loads it).
   */
  assertServes(capability: ModelCapability, name?: string): void {
    const entry = this.model(capability, name);
    const engines = entry.engines as Engine[];
    // a model still loading passes: its request waits for it (MODEL_LOAD_WAIT_SECONDS); so does one
    // being unloaded: its request waits for the unload, then loads it again (as Ollama does)
    if (this.unloading.has(entry)) return;
    // and one restarting after a crash: its request waits for the restart (prepare)
    if (this.catalogue.loadWaitMs !== 0 && this.restarting(entry)) return;
    if (engines.some((e) => this.loads.has(e)) && engines.every((e) => this.settled.has(e))) this.ready(capability, entry.id);
  }

  /**
   * Marks the model in use until the returned function is called; then, idle, it stays loaded for
   * the keep-alive (MODEL_KEEP_ALIVE) and is unloaded (only adapters that can unload: runner processes).
   */
  use(entry: ModelEntry): () => void {
    clearTimeout(this.idleTimers.get(entry));
    this.idleTimers.delete(entry);
    this.inUse.set(entry, (this.inUse.get(entry) ?? 0) + 1);
    this.lastUsed.set(entry, Date.now());
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.inUse.get(entry) ?? 1) - 1;
      this.inUse.set(entry, left);
      this.lastUsed.set(entry, Date.now());
      const keepAlive = this.keepAlive.get(entry) ?? this.catalogue.keepAliveMs ?? -1;
      if (left > 0 || keepAlive < 0 || !this.unloadable(entry)) return;
      const timer = setTimeout(() => void this.unload(entry, 'keep_alive').catch(() => undefined), keepAlive);
      timer.unref();
      this.idleTimers.set(entry, timer);
    };
  }

  /**
   * A request's `keep_alive` (ms; -1: forever) becomes its model's keep-alive from now on. Called
   * once the engine has accepted the request (its first event), so a request refused by validation
   * or by the engine's own checks changes nothing; before its release, so `0` unloads after it.
   */
  keepAliveFor(entry: ModelEntry, keepAliveMs: number | undefined): void {
    if (keepAliveMs !== undefined) this.keepAlive.set(entry, keepAliveMs);
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

  /**
   * The model a bare name means (GET /v1/models/{id}, load, unload): an id or alias of any
   * capability (unique across them: the models file refuses a clash), or an SDK speech-to-text name
   * (`whisper-1`: the default STT model); 404 otherwise.
   */
  byId(id: string): ModelEntry {
    const entry = [...this.catalogue.llm, ...this.catalogue.stt, ...(this.ttsListed ? this.catalogue.tts : [])].find((m) => m.id === id || m.aliases.includes(id)) ?? (STT_SDK_ALIASES.includes(id) ? this.catalogue.stt[0] : undefined);
    if (!entry) throw new ApiError(404, 'not_found_error', `The model '${id}' does not exist on this server (see GET /v1/models).`, { param: 'model', code: 'model_not_found' });
    return entry;
  }

  /**
   * POST /v1/models/{id}/load: loads a model now (for operators); resolves when it has settled, or
   * rejects when `signal` fires first (the client left, REQUEST_TIMEOUT_SECONDS; the load goes on).
   * `keepAliveMs` (its body's `keep_alive`) becomes the model's keep-alive once it is loaded.
   */
  async loadModel(id: string, signal?: AbortSignal, keepAliveMs?: number): Promise<ModelReport> {
    const entry = this.byId(id);
    // not held (use()) while it loads: a loading model is not evicted anyway, and an operator's
    // unload may stop a load that does not finish
    try {
      await this.unloading.get(entry);
      await this.retry(entry);
      await this.admit(entry, true);
      await this.loaded(entry, signal, undefined, undefined); // an operator's load answers when it has settled
      this.keepAliveFor(entry, keepAliveMs); // `keep_alive` of its body, from now on
    } finally {
      this.use(entry)(); // idle from now: the keep-alive runs
    }
    return this.report(entry);
  }

  /**
   * A model whose runner gave up (crashed on load repeatedly, model file missing) stays so for
   * requests (their 503, no retry loop); an operator's load starts it afresh, crash count reset.
   */
  private async retry(entry: ModelEntry): Promise<void> {
    const failed = (entry.engines as Engine[]).filter((e) => e.unload && this.settled.has(e) && ['error', 'missing_model'].includes(e.state().status));
    await Promise.all(failed.map((e) => e.unload!()));
    for (const e of failed) {
      this.loads.delete(e);
      this.settled.delete(e);
    }
  }

  /** POST /v1/models/{id}/unload: frees a model's memory now; 409 while requests use it or wait for its load. */
  async unloadModel(id: string): Promise<ModelReport> {
    const entry = this.byId(id);
    if (!this.unloadable(entry)) throw new ApiError(409, 'invalid_request_error', `The model '${entry.id}' cannot be unloaded: its engine does not run in a runner process of its own.`, { param: 'model', code: 'model_not_unloadable' });
    if (this.claimed(entry)) throw new ApiError(409, 'invalid_request_error', `The model '${entry.id}' is serving requests (or requests wait for it to load); unload it when they are done.`, { param: 'model', code: 'model_busy', headers: { 'Retry-After': '5' } });
    await this.unload(entry, 'operator');
    return this.report(entry);
  }

  /** Requests use the model, or wait for its load (they count as using it: an unload would fail them). */
  private claimed(entry: ModelEntry): boolean {
    return (this.inUse.get(entry) ?? 0) > 0 || (this.preparing.get(entry) ?? 0) > 0;
  }

  private async unload(entry: ModelEntry, reason: UnloadReason): Promise<void> {
    if (this.claimed(entry)) return; // a request came in meanwhile
    clearTimeout(this.idleTimers.get(entry));
    this.idleTimers.delete(entry);
    const engines = (entry.engines as Engine[]).filter((e) => this.loads.has(e));
    if (engines.length === 0) return;
    const done = (async () => {
      // a load under way is stopped with it (its runner is killed, whether it answers or hangs): its
      // promise settles, and a load finishing later no longer counts (load() checks it is current)
      await Promise.all(engines.map((e) => (e.unload ? e.unload() : Promise.resolve())));
      for (const e of engines) {
        this.loads.delete(e);
        this.settled.delete(e);
      }
      this.unloaded.add(entry);
      this.evictions?.inc({ model: entry.id, reason });
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
        if (this.unloading.has(m)) {
          // its runner is stopping: what the process still holds until it is gone
          const rss = engines.reduce((sum, e) => sum + (e.memoryBytes?.() ?? 0), 0);
          return [{ id: m.id, capability, state: 'unloading', aliases: m.aliases, default: i === 0, ...(rss > 0 ? { memoryBytes: rss } : {}), ...(m.memory ? { device: m.memory.device, memoryNeedBytes: this.need(m) } : {}) }];
        }
        const state = !started
          ? 'unloaded'
          : statuses.includes('ready')
            ? 'loaded'
            : statuses.some((s) => s === 'loading' || s === 'restarting')
              ? 'loading'
              : 'error';
        const memory = this.holds(m);
        const device = m.memory ? { device: m.memory.device, memoryNeedBytes: this.need(m) } : {};
        return [{ id: m.id, capability, state, aliases: m.aliases, default: i === 0, ...(memory > 0 ? { memoryBytes: memory } : {}), ...device }];
      }),
    );
  }

  /** Each budgeted device: its budget and what the runner models there hold now. */
  memory(): DeviceMemory[] {
    const budgets = this.catalogue.budgets;
    if (!budgets) return [];
    const devices = new Set([...Object.keys(budgets.devices), ...[...this.catalogue.llm, ...this.catalogue.stt].flatMap((m) => (m.memory ? [m.memory.device] : []))]);
    return [...devices].flatMap((device) => {
      const budgetBytes = budgetOf(budgets, device);
      if (budgetBytes === undefined) return [];
      return [{ device, budgetBytes, usedBytes: this.onDevice(device).reduce((sum, m) => sum + this.holds(m), 0) }];
    });
  }

  readiness(): Readiness {
    const capabilities = {} as Record<Capability, CapabilityReport>;
    const modelOf = new Map<Engine, string>();
    if (this.catalogue.strict) for (const m of [...this.catalogue.llm, ...this.catalogue.stt, ...(this.ttsListed ? this.catalogue.tts : [])]) for (const e of m.engines as Engine[]) modelOf.set(e, m.id);
    const deferred = this.deferred();
    const entries = [...this.catalogue.llm, ...this.catalogue.stt];
    const m = (e: Engine) => entries.find((x) => (x.engines as Engine[]).includes(e));
    for (const capability of CAPABILITIES) {
      const engines = (this.chains[capability] as Engine[]).map((e): EngineReport => {
        const model = modelOf.has(e) ? { model: modelOf.get(e) } : {};
        // a model loaded on demand (not yet, or again after an unload) does not hold readiness back
        const entry = m(e);
        const unloaded = entry && !this.loads.has(e) && (deferred.has(e) || this.unloaded.has(entry));
        if (unloaded) {
          const why = deferred.has(e) ? `not loaded yet (${this.refused.has(entry) ? 'it did not fit MODEL_MEMORY_BUDGET_MB at start-up' : 'preload: false'})` : 'unloaded';
          return { engine: e.id, ...model, status: 'unloaded', detail: `${why}: loads on the next request that names it` };
        }
        const { log, ...state } = e.state();
        // operator-only log lines join the detail here (/health/ready shows detail to valid keys only)
        return { engine: e.id, ...model, ...state, ...(log ? { detail: state.detail ? `${state.detail}\n${log}` : log } : {}) };
      });
      // models that are unloaded load on their next request: when nothing else is loading or
      // failing, the capability serves (a preload still loading at start-up keeps it not ready)
      const onDemand = engines.some((e) => e.status === 'unloaded') && engines.every((e) => e.status === 'unloaded' || e.status === 'disabled');
      const status = engines.some((e) => e.status === 'ready') || onDemand
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
    // a restart: when its backoff ends (its load follows); a model load takes a few seconds
    const retryAfter = code === 'engine_restarting' ? retryAfterSeconds(...chain.map((e) => e.state())) : code === 'engine_loading' ? '5' : undefined;
    throw new ApiError(503, 'server_error', message, { code, ...(retryAfter ? { headers: { 'Retry-After': retryAfter } } : {}) });
  }

  async close(): Promise<void> {
    for (const timer of this.idleTimers.values()) clearTimeout(timer);
    await Promise.allSettled(this.all().map((e) => e.close()));
  }
}

const mb = (bytes: number) => Math.round(bytes / MIB);

const NAMES: Record<Capability, string> = { llm: 'text-generation', stt: 'speech-to-text', tts: 'text-to-speech' };

function describe(state: EngineState): string {
  return state.detail ? `${state.status.replace('_', ' ')}: ${state.detail}` : state.status.replace('_', ' ');
}
