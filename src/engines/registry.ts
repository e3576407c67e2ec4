/**
 * The engines of one process, by capability, each an ordered fallback chain. Built once from the
 * configuration by the composition root (`engines/index.ts`), loaded at start-up (the server
 * listens meanwhile and reports `loading`), asked for readiness, and closed on shutdown.
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
}

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

  constructor(
    private readonly chains: EngineChains,
    private readonly metrics?: Metrics,
  ) {}

  private all(): Engine[] {
    return CAPABILITIES.flatMap((c) => this.chains[c] as Engine[]);
  }

  /** Starts loading every engine (once). Resolves when all have settled; never rejects. */
  start(): Promise<void> {
    this.loading ??= Promise.all(
      this.all().map(async (engine) => {
        await engine.load();
        this.metrics?.engineReady.set({ capability: engine.capability, engine: engine.id }, engine.state().status === 'ready' ? 1 : 0);
      }),
    ).then(() => undefined);
    return this.loading;
  }

  readiness(): Readiness {
    const capabilities = {} as Record<Capability, CapabilityReport>;
    for (const capability of CAPABILITIES) {
      const engines = (this.chains[capability] as Engine[]).map((e) => {
        const { log, ...state } = e.state();
        // operator-only log lines join the detail here (/health/ready shows detail to valid keys only)
        return { engine: e.id, ...state, ...(log ? { detail: state.detail ? `${state.detail}\n${log}` : log } : {}) };
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

  /** The engines of a capability that are ready now, in fallback order; 503 envelope when none is. */
  ready<C extends Capability>(capability: C): EngineChains[C] {
    const chain = this.chains[capability] as Engine[];
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
    await Promise.allSettled(this.all().map((e) => e.close()));
  }
}

const NAMES: Record<Capability, string> = { llm: 'text-generation', stt: 'speech-to-text', tts: 'text-to-speech' };

function describe(state: EngineState): string {
  return state.detail ? `${state.status.replace('_', ' ')}: ${state.detail}` : state.status.replace('_', ' ');
}
