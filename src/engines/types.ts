/** What every engine adapter shares, whatever its capability. */
export type Capability = 'llm' | 'stt' | 'tts';

/** `restarting`: its runner process exited and is being started again (detail: the exit reason). */
export type EngineStatus = 'ready' | 'loading' | 'missing_model' | 'disabled' | 'error' | 'restarting';

export interface EngineState {
  status: EngineStatus;
  /** For people: why it is not ready and how to fix it (the remedy). Goes into API errors too. */
  detail?: string;
  /**
   * For operators only: what the engine's process printed last (buffer sizes, model file names).
   * Appended to `detail` in /health/ready (shown to requests with a valid key) and logged; never
   * put in an API error a client sees.
   */
  log?: string;
  /** `restarting` only: milliseconds until the runner is started again (its backoff left); Retry-After tells clients. */
  restartInMs?: number;
}

/** Retry-After for engines that are restarting: the longest backoff left among them, at least 1 s. */
export function retryAfterSeconds(...states: EngineState[]): string {
  const ms = Math.max(0, ...states.map((s) => (s.status === 'restarting' ? (s.restartInMs ?? 0) : 0)));
  return String(Math.max(1, Math.ceil(ms / 1000)));
}

export interface Engine {
  /** Stable adapter id, named in responses and metrics (e.g. `llama-cpp`, `openai`). */
  readonly id: string;
  readonly capability: Capability;
  /** Loads models / checks the upstream once, at start-up. Must not throw: failures become state. */
  load(): Promise<void>;
  state(): EngineState;
  /** Memory its model holds now, in bytes, where the adapter can tell (a runner process's RSS). */
  memoryBytes?(): number | undefined;
  /** Frees the model's memory (a runner process exits); a later load() loads it again. Called only while no request uses it. */
  unload?(): Promise<void>;
  close(): Promise<void>;
}

/** Placeholder for a capability whose adapter is not built (or not enabled) in this deployment. */
export class UnconfiguredEngine implements Engine {
  constructor(
    readonly capability: Capability,
    readonly id: string,
    private readonly reason: string,
  ) {}
  async load(): Promise<void> {}
  state(): EngineState {
    return { status: 'disabled', detail: this.reason };
  }
  async close(): Promise<void> {}
}
