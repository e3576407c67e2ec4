/**
 * The gateway side of a model runner, shared by every capability (the LLM's llama-runner.ts, the
 * STT's whisper-runner.ts): forks the runner entry (child.ts inside), sends it its model, and
 * supervises it. A native fault in the runner (assertion, abort, OOM kill) ends that process only:
 * the requests it was serving fail with 503 `engine_restarting` (an SSE / WebSocket `error` event
 * mid-stream), readiness shows `restarting` with the exit reason, and the runner is started again
 * with backoff. A runner that crashes while loading MAX_LOAD_CRASHES times in a row is marked
 * `error` with its last log lines and not started again. Metrics per model: runner_up,
 * runner_restarts_total{reason}, runner_rss_bytes.
 *
 * Requests stream: one IPC message per event; a client that leaves sends `cancel` at once and its
 * stream ends here without waiting for the runner.
 */
import { fork, type ChildProcess, type SerializationType } from 'node:child_process';
import fs from 'node:fs';
import { Gauge } from 'prom-client';
import type { Logger } from 'pino';
import { ApiError } from '../../errors.ts';
import type { Metrics } from '../../observability/metrics.ts';
import { AsyncQueue } from '../../util/async-queue.ts';
import { retryAfterSeconds, type Capability, type EngineState } from '../types.ts';
import { fromWire, type FromRunner, type ToRunner } from './protocol.ts';

/** Consecutive crashes before the runner has reported its model loaded, after which it is left in `error`. */
const MAX_LOAD_CRASHES = 3;
/** Default restart delays: 250 ms, doubling per consecutive crash, at most 10 s. */
export const DEFAULT_BACKOFF_MS = { min: 250, max: 10_000 };
/** A runner up this long has its crash count forgotten (a crash a day is not a crash loop). */
const STABLE_MS = 60_000;
/**
 * Before a runner's first pong it is still starting (tsx, native bindings): it gets at least this
 * long, so a short RUNNER_HANG_SECONDS does not kill runners on a busy machine before they can answer.
 */
const STARTUP_GRACE_MS = 15_000;
/** How long `close` waits for the runner to unload before it is killed. */
const CLOSE_TIMEOUT_MS = 5000;
const LOG_LINES = 20;

export interface RunnerSpec {
  capability: Capability;
  /** For logs and messages: "LLM", "Whisper". */
  kind: string;
  /** For clients: "text-generation", "speech-to-text". */
  what: string;
  /** The metrics label. */
  modelName: string;
  /** The runner entry, next to the module that calls this (its .ts under tsx, its .js from dist/). */
  entry: URL;
  /** `advanced` (structured clone) carries typed arrays as such: audio as Float32Array. */
  serialization: SerializationType;
  /** Restart delays: min, doubling per consecutive crash, at most max. */
  backoffMs?: { min: number; max: number };
  /** The level the runner's native stdout/stderr is logged at (whisper.cpp narrates its load on stderr). */
  outputLevel?: 'info' | 'warn';
  /** A runner (loading or loaded) that answers no ping for this long is killed (reason `hang`) and restarted; 0 = no watchdog. */
  hangMs?: number;
  /** A runner that has not reported its model loaded this long after it started is killed (reason `load_timeout`); 0 = no limit. */
  loadTimeoutMs?: number;
  logger: Logger;
  metrics?: Metrics;
}

type Item<Event> = { event: Event } | { error: unknown };

interface RunnerMetrics {
  restarts: ReturnType<Metrics['counter']>;
  up: ReturnType<Metrics['gauge']>;
}

/** Runners per metrics registry, for the RSS gauge read at scrape time. */
const rssSources = new WeakMap<Metrics, Set<RunnerSupervisor<unknown, unknown, unknown>>>();

function runnerMetrics(metrics: Metrics, runner: RunnerSupervisor<unknown, unknown, unknown>): RunnerMetrics {
  let sources = rssSources.get(metrics);
  if (!sources) {
    const set = new Set<RunnerSupervisor<unknown, unknown, unknown>>();
    sources = set;
    rssSources.set(metrics, set);
    new Gauge({
      name: 'runner_rss_bytes',
      help: 'Resident memory of each model runner process (0 while it is down).',
      labelNames: ['model', 'capability'] as const,
      registers: [metrics.registry],
      collect() {
        for (const r of set) this.set({ model: r.modelName, capability: r.capability }, r.rssBytes());
      },
    });
  }
  sources.add(runner);
  return {
    restarts: metrics.counter('runner_restarts_total', 'Model runner processes restarted after they exited unexpectedly, by model and exit reason (signal, exit code or `hang`).', ['model', 'capability', 'reason']),
    up: metrics.gauge('runner_up', '1 while the model runner process is up with its model loaded, 0 otherwise.', ['model', 'capability']),
  };
}

/** How a runner entry is started: TypeScript through tsx from source, plain JS from dist/. */
export function runnerEntry(file: URL): { file: URL; execArgv: string[] } {
  if (!file.pathname.endsWith('.ts')) return { file, execArgv: [] };
  // resolved here, not by name, so the runner finds tsx whatever the working directory
  return { file, execArgv: ['--import', import.meta.resolve('tsx')] };
}

/** The entry file `name` (without extension) next to `module` (an import.meta.url), .ts or .js as that module is. */
export function siblingEntry(module: string, name: string): URL {
  return new URL(`./${name}${module.endsWith('.ts') ? '.ts' : '.js'}`, module);
}

export class RunnerSupervisor<Load, Request, Event> {
  readonly modelName: string;
  readonly capability: Capability;
  private current: EngineState = { status: 'loading' };
  private child: ChildProcess | undefined;
  /** Whether the current runner reported its model loaded (a crash before is a crash on load). */
  private loaded = false;
  /** The runner reported a load failure (missing model…) and was told to exit: not a crash. */
  private gaveUp = false;
  private closing = false;
  private loadCrashes = 0;
  private unloads = 0;
  private crashes = 0;
  private upSince = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  /** When the runner that crashed is started again (its backoff ends): what Retry-After tells (restartInMs). */
  private restartAt = 0;
  private nextId = 0;
  private readonly pending = new Map<number, AsyncQueue<Item<Event>>>();
  private readonly lastLines: string[] = [];
  private settle: (() => void) | undefined;
  private readonly metrics: RunnerMetrics | undefined;
  private options: Load | undefined;
  private readonly backoff: { min: number; max: number };
  private watchdog: NodeJS.Timeout | undefined;
  private lastPong = 0;
  private pingSeq = 0;
  /** Whether the current runner has answered a ping yet (before: STARTUP_GRACE_MS applies). */
  private answered = false;
  private loadTimer: NodeJS.Timeout | undefined;
  /** The runner the supervisor killed and why (`hang`, `load_timeout`): its exit reason, not SIGKILL. */
  private killed: { child: ChildProcess; reason: string } | undefined;

  constructor(private readonly spec: RunnerSpec) {
    this.modelName = spec.modelName;
    this.capability = spec.capability;
    this.backoff = spec.backoffMs ?? DEFAULT_BACKOFF_MS;
    this.metrics = spec.metrics ? runnerMetrics(spec.metrics, this as RunnerSupervisor<unknown, unknown, unknown>) : undefined;
    this.metrics?.up.set(this.labels(), 0);
  }

  private labels(): { model: string; capability: string } {
    return { model: this.modelName, capability: this.capability };
  }

  state(): EngineState {
    if (this.current.status !== 'restarting') return this.current;
    return { ...this.current, restartInMs: Math.max(0, this.restartAt - Date.now()) };
  }

  /** Sets the state before the runner starts (`loading` while the gateway finds the model, or why it could not). */
  fail(state: EngineState): void {
    this.current = state;
  }

  /** Counts unloads: a load begun before one (still finding its model file) must not start a runner after it. */
  get generation(): number {
    return this.unloads;
  }

  /** The runner's pid while it runs (tests and operators). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  rssBytes(): number {
    const pid = this.child?.pid;
    if (!pid || this.child?.exitCode !== null) return 0;
    try {
      // /proc/<pid>/statm: size resident … in pages
      const resident = Number(fs.readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]);
      return resident * 4096;
    } catch {
      return 0;
    }
  }

  /** Starts the runner with `options`; resolves once its model is loaded or it failed for good. Never rejects. */
  async start(options: Load): Promise<void> {
    if (this.closing) return;
    this.options = options;
    this.current = { status: 'loading' }; // also when loading again after an unload
    await new Promise<void>((resolve) => {
      this.settle = resolve;
      this.spawn();
    });
  }

  private settled(): void {
    this.settle?.();
    this.settle = undefined;
  }

  private remember(line: string): void {
    this.lastLines.push(line.length > 500 ? `${line.slice(0, 500)}…` : line);
    if (this.lastLines.length > LOG_LINES) this.lastLines.shift();
  }

  private spawn(): void {
    this.restartTimer = undefined;
    if (this.closing) return;
    this.loaded = false;
    this.gaveUp = false;
    const { file, execArgv } = runnerEntry(this.spec.entry);
    let child: ChildProcess;
    try {
      child = fork(file, [], { execArgv, stdio: ['ignore', 'pipe', 'pipe', 'ipc'], serialization: this.spec.serialization });
    } catch (error) {
      this.current = { status: 'error', detail: `could not start the ${this.spec.kind} runner: ${(error as Error).message}` };
      this.settled();
      return;
    }
    this.child = child;
    const onOutput = (stream: 'stdout' | 'stderr') => (data: Buffer) => {
      for (const line of data.toString().split('\n')) {
        if (!line.trim()) continue;
        this.remember(line);
        this.spec.logger[this.spec.outputLevel ?? 'warn']({ runner_pid: child.pid, [`runner_${stream}`]: line }, `${this.spec.kind} runner output`);
      }
    };
    child.stdout?.on('data', onOutput('stdout'));
    child.stderr?.on('data', onOutput('stderr'));
    child.on('message', (message: FromRunner<Event>) => this.onMessage(message));
    child.on('error', (error) => this.spec.logger.error({ err: error, runner_pid: child.pid }, `${this.spec.kind} runner error`));
    child.on('exit', (code, signal) => this.onExit(child, code, signal));
    this.send({ type: 'load', options: this.options!, logLevel: this.spec.logger.level });
    // a runner that stops answering while it loads (SIGSTOP, a deadlock) is caught as when loaded,
    // and a load that never ends (a native call stuck on its thread) by the load time limit
    this.watch();
    const loadTimeoutMs = this.spec.loadTimeoutMs ?? 0;
    if (loadTimeoutMs > 0) {
      this.loadTimer = setTimeout(() => this.kill(child, 'load_timeout', `${this.spec.kind} runner did not load its model within ${loadTimeoutMs / 1000} s (RUNNER_LOAD_TIMEOUT_SECONDS); killing it`), loadTimeoutMs);
      this.loadTimer.unref();
    }
  }

  /** Kills a runner that stopped answering or loading; it exits with `reason` and is restarted as after a crash. */
  private kill(child: ChildProcess, reason: string, message: string): void {
    if (this.child !== child) return;
    clearInterval(this.watchdog);
    clearTimeout(this.loadTimer);
    this.killed = { child, reason };
    this.spec.logger.error({ capability: this.capability, runner_pid: child.pid, loaded: this.loaded, silent_ms: Date.now() - this.lastPong }, message);
    child.kill('SIGKILL');
  }

  private send(message: ToRunner<Load, Request>): void {
    const child = this.child;
    if (child?.connected) child.send(message, (error) => error && this.spec.logger.debug({ err: error }, `${this.spec.kind} runner message not delivered`));
  }

  private finish(id: number, item?: Item<Event>): void {
    const queue = this.pending.get(id);
    if (!queue) return;
    if (item) queue.push(item);
    queue.end();
    this.pending.delete(id);
  }

  private onMessage(message: FromRunner<Event>): void {
    // shutting down: what a runner still loading has to say about its model no longer matters
    if (this.closing && (message.type === 'loaded' || message.type === 'log')) return;
    switch (message.type) {
      case 'event':
        this.pending.get(message.id)?.push({ event: message.event });
        break;
      case 'end':
        this.finish(message.id);
        break;
      case 'failed':
        this.finish(message.id, { error: fromWire(message.error) });
        break;
      case 'loaded':
        if (message.state.status === 'ready') {
          this.loaded = true;
          this.loadCrashes = 0;
          this.upSince = Date.now();
          this.current = { status: 'ready' };
          this.metrics?.up.set(this.labels(), 1);
          clearTimeout(this.loadTimer);
        } else {
          // a clean failure (missing or unreadable model): the runner says why; restarting would not help
          this.gaveUp = true;
          this.current = message.state;
          this.send({ type: 'close' });
        }
        this.settled();
        break;
      case 'log':
        this.relay(message.line);
        break;
      case 'pong':
        this.lastPong = Date.now();
        this.answered = true;
        break;
    }
  }

  /** A pino line of the runner, logged through the gateway's logger (its redaction and sink). */
  private relay(line: string): void {
    const logger = this.spec.logger;
    let record: Record<string, unknown>;
    try {
      record = JSON.parse(line) as Record<string, unknown>;
    } catch {
      this.remember(line.trim());
      logger.info({ runner_output: line.trim() }, `${this.spec.kind} runner output`);
      return;
    }
    const { level, msg, ...fields } = record;
    const label = logger.levels.labels[level as number] ?? 'info';
    if ((level as number) >= 40) this.remember(`${String(msg)} ${JSON.stringify(fields)}`);
    (logger[label as 'info'] as (obj: object, msg?: string) => void).call(logger, fields, msg as string);
  }

  /**
   * The hang watchdog: pings the runner from its start (while it loads too); one that has not
   * answered for hangMs (a deadlock, a SIGSTOP, a native call that never returns on the event loop)
   * is killed and restarted. Model loading and work run off the runner's event loop (llama.cpp and
   * whisper.cpp load and infer on native threads), so a loading or busy runner still answers.
   */
  private watch(): void {
    const hangMs = this.spec.hangMs ?? 0;
    const child = this.child;
    clearInterval(this.watchdog);
    if (hangMs <= 0 || !child) return;
    this.lastPong = Date.now();
    this.answered = false;
    this.watchdog = setInterval(
      () => {
        if (this.child !== child) return clearInterval(this.watchdog);
        const limit = this.answered ? hangMs : Math.max(hangMs, STARTUP_GRACE_MS);
        if (Date.now() - this.lastPong > limit) return this.kill(child, 'hang', `${this.spec.kind} runner stopped answering${this.loaded ? '' : ' while loading its model'}; killing it`);
        this.send({ type: 'ping', seq: ++this.pingSeq });
      },
      Math.max(50, Math.min(1000, hangMs / 4)),
    );
    this.watchdog.unref();
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child === child) {
      this.child = undefined;
      clearInterval(this.watchdog);
      clearTimeout(this.loadTimer);
    }
    this.metrics?.up.set(this.labels(), 0);
    const reason = this.killed?.child === child ? this.killed.reason : (signal ?? `exit_${code}`);
    const wasLoaded = this.loaded;
    // the requests it was serving fail once the restart is decided: their Retry-After is its backoff
    try {
      if (this.closing || this.gaveUp) return;
      this.metrics?.restarts.inc({ ...this.labels(), reason });
      const log = this.lastLines.slice(-10).join('\n');
      const logger = this.spec.logger;
      if (!wasLoaded) {
        this.loadCrashes++;
        if (this.loadCrashes >= MAX_LOAD_CRASHES) {
          // the log lines (and the model's file) are for operators: /health/ready and the log, not API errors
          this.current = {
            status: 'error',
            detail: `the ${this.spec.kind} runner crashed ${this.loadCrashes} times while loading its model (last: ${reason}); not retried.`,
            log: `Model: ${this.modelName}. Last log lines:\n${log}`,
          };
          logger.error({ capability: this.capability, reason, crashes: this.loadCrashes, last_lines: this.lastLines }, `${this.spec.kind} runner keeps crashing on load; giving up`);
          this.settled();
          return;
        }
      }
      if (wasLoaded && Date.now() - this.upSince > STABLE_MS) this.crashes = 0;
      this.crashes++;
      const delay = Math.min(this.backoff.max, this.backoff.min * 2 ** (this.crashes - 1));
      this.current = { status: 'restarting', detail: `the ${this.spec.kind} runner exited (${reason}); restarting in ${delay} ms` };
      logger.error({ capability: this.capability, reason, restart_in_ms: delay, loaded: wasLoaded, last_lines: this.lastLines.slice(-5) }, `${this.spec.kind} runner exited; restarting`);
      this.restartAt = Date.now() + delay;
      this.restartTimer = setTimeout(() => this.spawn(), delay);
    } finally {
      const restarting = new ApiError(503, 'server_error', `The ${this.spec.what} runner stopped (${reason}) while serving this request; it is restarting. Try again shortly.`, { code: 'engine_restarting', headers: { 'Retry-After': retryAfterSeconds(this.state()) } });
      for (const id of [...this.pending.keys()]) this.finish(id, { error: restarting });
    }
  }

  /**
   * One request's events, streamed from the runner; bulk data may follow it in `parts` (the runner
   * entry's `assemble` puts it back). Fails at once (503) when the runner is not ready; an abort of `signal` cancels the request in the runner and ends this stream without
   * waiting for it.
   */
  async *stream(request: Request, signal: AbortSignal, parts: Float32Array[] = []): AsyncIterable<Event> {
    if (this.current.status !== 'ready' || !this.child) {
      if (this.current.status === 'restarting') {
        throw new ApiError(503, 'server_error', `${this.spec.kind} not ready: ${this.current.detail ?? this.current.status}`, { code: 'engine_restarting', headers: { 'Retry-After': retryAfterSeconds(this.state()) } });
      }
      throw ApiError.unavailable(`${this.spec.kind} not ready: ${this.current.detail ?? this.current.status}`, 'engine_unavailable');
    }
    signal.throwIfAborted();
    const id = ++this.nextId;
    const queue = new AsyncQueue<Item<Event>>();
    this.pending.set(id, queue);
    const onAbort = () => {
      // the client left: the runner stops now; this stream ends without waiting for its answer
      if (!this.pending.delete(id)) return;
      this.send({ type: 'cancel', id });
      queue.push({ error: signal.reason });
      queue.end();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    this.send({ type: 'start', id, request, ...(parts.length ? { parts: parts.length } : {}) });
    for (const data of parts) this.send({ type: 'part', id, data });
    try {
      for await (const item of queue) {
        if ('error' in item) throw item.error;
        yield item.event;
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      // the consumer stopped early (or the stream failed): make sure the runner stops too
      if (this.pending.delete(id)) this.send({ type: 'cancel', id });
    }
  }

  /**
   * Stops the runner to free its memory (keep-alive expiry, an operator's unload); `start` loads it
   * again. Unlike `close`, the supervisor stays usable.
   */
  async unload(): Promise<void> {
    this.unloads++;
    await this.close();
    this.closing = false;
    this.loaded = false;
    this.loadCrashes = 0;
    this.crashes = 0;
    this.child = undefined;
    this.current = { status: 'disabled', detail: 'unloaded: loads again on the next request that names it' };
  }

  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.restartTimer);
    clearInterval(this.watchdog);
    clearTimeout(this.loadTimer);
    this.current = { status: 'disabled', detail: 'closed' };
    this.settled();
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    // a runner still loading has nothing to finish (and may not answer at all): killed at once
    if (!this.loaded) child.kill('SIGKILL');
    else this.send({ type: 'close' });
    const timer = setTimeout(() => child.kill('SIGKILL'), CLOSE_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  }
}
