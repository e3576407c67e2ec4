/**
 * The embedded LLM behind a process boundary: the gateway-side adapter of the LLM port that runs
 * llama.cpp in a supervised child process (llm-runner.ts, LLM_RUNNER=process). A native fault in
 * llama.cpp (assertion, abort, OOM kill) ends the runner only: its in-flight generations fail with
 * 503 `engine_restarting` (an SSE `error` event mid-stream), readiness reports `restarting` with
 * the exit reason, and the runner is started again with backoff. A runner that crashes while
 * loading RUNNER_MAX_LOAD_CRASHES times in a row is marked `error` with its last log lines.
 *
 * Tokens stream over the IPC channel one message per text chunk; a client that leaves sends
 * `cancel` at once (llama.cpp stops within a token) and its stream ends here without waiting.
 */
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { Gauge } from 'prom-client';
import type { Logger } from 'pino';
import { ApiError, type ErrorType } from '../../errors.ts';
import type { Metrics } from '../../observability/metrics.ts';
import { AsyncQueue } from '../../util/async-queue.ts';
import { ModelUnavailableError } from '../../models/errors.ts';
import { resolveGguf } from '../../models/gguf.ts';
import type { EngineState } from '../types.ts';
import { modelNameOf, type LlamaCppOptions } from './llama-cpp.ts';
import type { FromRunner, ToRunner, WireError } from './runner-protocol.ts';
import type { GenerationParams, LlmEngine, LlmEvent, LlmInput } from './types.ts';

/** Consecutive crashes before the runner has reported its model loaded, after which it is left in `error`. */
const MAX_LOAD_CRASHES = 3;
/** Restart delays: 250 ms, doubling per consecutive crash, at most 10 s. */
const BACKOFF_MS = { first: 250, max: 10_000 };
/** A runner up this long has its crash count forgotten (a crash a day is not a crash loop). */
const STABLE_MS = 60_000;
/** How long `close` waits for the runner to unload before it is killed. */
const CLOSE_TIMEOUT_MS = 5000;
const LOG_LINES = 20;

type Item = { event: LlmEvent } | { error: unknown };

interface Pending {
  queue: AsyncQueue<Item>;
}

interface RunnerMetrics {
  restarts: ReturnType<Metrics['counter']>;
  up: ReturnType<Metrics['gauge']>;
}

/** Runners per metrics registry, for the RSS gauge read at scrape time. */
const rssSources = new WeakMap<Metrics, Set<LlamaRunnerEngine>>();

function runnerMetrics(metrics: Metrics, engine: LlamaRunnerEngine): RunnerMetrics {
  let sources = rssSources.get(metrics);
  if (!sources) {
    const set = new Set<LlamaRunnerEngine>();
    sources = set;
    rssSources.set(metrics, set);
    new Gauge({
      name: 'runner_rss_bytes',
      help: 'Resident memory of each model runner process (0 while it is down).',
      labelNames: ['model'] as const,
      registers: [metrics.registry],
      collect() {
        for (const runner of set) this.set({ model: runner.modelName }, runner.rssBytes());
      },
    });
  }
  sources.add(engine);
  return {
    restarts: metrics.counter('runner_restarts_total', 'Model runner processes restarted after they exited unexpectedly, by model and exit reason (signal or exit code).', ['model', 'reason']),
    up: metrics.gauge('runner_up', '1 while the model runner process is up with its model loaded, 0 otherwise.', ['model']),
  };
}

/** How the runner is started: TypeScript through tsx from source, plain JS from dist/. */
function runnerEntry(): { file: URL; execArgv: string[] } {
  const fromSource = import.meta.url.endsWith('.ts');
  if (!fromSource) return { file: new URL('./llm-runner.js', import.meta.url), execArgv: [] };
  // resolved here, not by name, so the runner finds tsx whatever the working directory
  return { file: new URL('./llm-runner.ts', import.meta.url), execArgv: ['--import', import.meta.resolve('tsx')] };
}

function rebuild(error: WireError): Error {
  if (error.statusCode) return new ApiError(error.statusCode, error.type as ErrorType, error.message, { param: error.param, code: error.code });
  if (error.name === 'AbortError') return new DOMException(error.message, 'AbortError');
  return new Error(error.message);
}

export class LlamaRunnerEngine implements LlmEngine {
  readonly id = 'llama-cpp';
  readonly capability = 'llm' as const;
  readonly modelName: string;
  private current: EngineState = { status: 'loading' };
  private child: ChildProcess | undefined;
  /** Whether the current runner reported its model loaded (a crash before is a crash on load). */
  private loaded = false;
  /** The runner reported a load failure (missing model…) and was told to exit: not a crash. */
  private gaveUp = false;
  private closing = false;
  private loadCrashes = 0;
  private crashes = 0;
  private upSince = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private nextId = 0;
  private readonly pending = new Map<number, Pending>();
  private readonly lastLines: string[] = [];
  private settle: (() => void) | undefined;
  private readonly metrics: RunnerMetrics | undefined;
  /** The GGUF file the runner loads (GEMMA_MODEL resolved by `load`). */
  private file: string | undefined;

  constructor(
    private readonly options: LlamaCppOptions,
    private readonly logger: Logger,
    metrics?: Metrics,
  ) {
    this.modelName = modelNameOf(options.model);
    this.metrics = metrics ? runnerMetrics(metrics, this) : undefined;
    this.metrics?.up.set({ model: this.modelName }, 0);
  }

  state(): EngineState {
    return this.current;
  }

  /** The runner's pid while it runs (tests and operators). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  memoryBytes(): number | undefined {
    return this.rssBytes() || undefined;
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

  /**
   * Finds (or downloads) the GGUF here, so a missing model is reported at once without starting a
   * runner; then starts the runner on that file. Resolves once its model is loaded or it failed for
   * good. Never rejects.
   */
  async load(): Promise<void> {
    try {
      this.file = await resolveGguf(this.options.model, { ...this.options.hf, logger: this.logger, variable: this.options.setting ?? 'model' });
    } catch (error) {
      const detail = error instanceof ModelUnavailableError ? error.message : `failed to load ${this.options.model}: ${(error as Error).message}`;
      this.current = { status: error instanceof ModelUnavailableError ? 'missing_model' : 'error', detail };
      this.logger.error({ engine: this.id, detail }, 'LLM not available');
      return;
    }
    if (this.closing) return;
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
    const { file, execArgv } = runnerEntry();
    let child: ChildProcess;
    try {
      child = fork(file, [], { execArgv, stdio: ['ignore', 'pipe', 'pipe', 'ipc'], serialization: 'json' });
    } catch (error) {
      this.current = { status: 'error', detail: `could not start the LLM runner: ${(error as Error).message}` };
      this.settled();
      return;
    }
    this.child = child;
    const onOutput = (stream: 'stdout' | 'stderr') => (data: Buffer) => {
      for (const line of data.toString().split('\n')) {
        if (!line.trim()) continue;
        this.remember(line);
        this.logger.warn({ runner_pid: child.pid, [`runner_${stream}`]: line }, 'LLM runner output');
      }
    };
    child.stdout?.on('data', onOutput('stdout'));
    child.stderr?.on('data', onOutput('stderr'));
    child.on('message', (message: FromRunner) => this.onMessage(message));
    child.on('error', (error) => this.logger.error({ err: error, runner_pid: child.pid }, 'LLM runner error'));
    child.on('exit', (code, signal) => this.onExit(child, code, signal));
    this.send({ type: 'load', options: { ...this.options, model: this.file ?? this.options.model }, logLevel: this.logger.level });
  }

  private send(message: ToRunner): void {
    const child = this.child;
    if (child?.connected) child.send(message, (error) => error && this.logger.debug({ err: error }, 'LLM runner message not delivered'));
  }

  private onMessage(message: FromRunner): void {
    // shutting down: what a runner still loading has to say about its model no longer matters
    if (this.closing && (message.type === 'loaded' || message.type === 'log')) return;
    switch (message.type) {
      case 'delta':
        this.pending.get(message.id)?.queue.push({ event: { type: 'delta', text: message.text } });
        break;
      case 'done': {
        const p = this.pending.get(message.id);
        p?.queue.push({ event: { type: 'done', result: message.result } });
        p?.queue.end();
        this.pending.delete(message.id);
        break;
      }
      case 'failed': {
        const p = this.pending.get(message.id);
        p?.queue.push({ error: rebuild(message.error) });
        p?.queue.end();
        this.pending.delete(message.id);
        break;
      }
      case 'loaded':
        if (message.state.status === 'ready') {
          this.loaded = true;
          this.loadCrashes = 0;
          this.upSince = Date.now();
          this.current = { status: 'ready' };
          this.metrics?.up.set({ model: this.modelName }, 1);
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
    }
  }

  /** A pino line of the runner, logged through the gateway's logger (its redaction and sink). */
  private relay(line: string): void {
    let record: Record<string, unknown>;
    try {
      record = JSON.parse(line) as Record<string, unknown>;
    } catch {
      this.remember(line.trim());
      this.logger.info({ runner_output: line.trim() }, 'LLM runner output');
      return;
    }
    const { level, msg, ...fields } = record;
    const label = this.logger.levels.labels[level as number] ?? 'info';
    if ((level as number) >= 40) this.remember(`${String(msg)} ${JSON.stringify(fields)}`);
    (this.logger[label as 'info'] as (obj: object, msg?: string) => void).call(this.logger, fields, msg as string);
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child === child) this.child = undefined;
    this.metrics?.up.set({ model: this.modelName }, 0);
    const reason = signal ?? `exit_${code}`;
    const wasLoaded = this.loaded;
    const restarting = new ApiError(503, 'server_error', `The text-generation runner stopped (${reason}) while serving this request; it is restarting. Try again shortly.`, { code: 'engine_restarting', headers: { 'Retry-After': '1' } });
    for (const [id, p] of this.pending) {
      p.queue.push({ error: restarting });
      p.queue.end();
      this.pending.delete(id);
    }
    if (this.closing || this.gaveUp) return;
    this.metrics?.restarts.inc({ model: this.modelName, reason });
    const log = this.lastLines.slice(-10).join('\n');
    if (!wasLoaded) {
      this.loadCrashes++;
      if (this.loadCrashes >= MAX_LOAD_CRASHES) {
        this.current = { status: 'error', detail: `the LLM runner crashed ${this.loadCrashes} times while loading ${this.options.model} (last: ${reason}); not retried. Last log lines:\n${log}` };
        this.logger.error({ engine: this.id, reason, crashes: this.loadCrashes, last_lines: this.lastLines }, 'LLM runner keeps crashing on load; giving up');
        this.settled();
        return;
      }
    }
    if (wasLoaded && Date.now() - this.upSince > STABLE_MS) this.crashes = 0;
    this.crashes++;
    const delay = Math.min(BACKOFF_MS.max, BACKOFF_MS.first * 2 ** (this.crashes - 1));
    this.current = { status: 'restarting', detail: `the LLM runner exited (${reason}); restarting in ${delay} ms` };
    this.logger.error({ engine: this.id, reason, restart_in_ms: delay, loaded: wasLoaded, last_lines: this.lastLines.slice(-5) }, 'LLM runner exited; restarting');
    this.restartTimer = setTimeout(() => this.spawn(), delay);
  }

  async *generate(input: LlmInput, params: GenerationParams, signal: AbortSignal): AsyncIterable<LlmEvent> {
    if (this.current.status !== 'ready' || !this.child) {
      throw ApiError.unavailable(`LLM not ready: ${this.current.detail ?? this.current.status}`, this.current.status === 'restarting' ? 'engine_restarting' : 'engine_unavailable');
    }
    signal.throwIfAborted();
    const id = ++this.nextId;
    const queue = new AsyncQueue<Item>();
    this.pending.set(id, { queue });
    const onAbort = () => {
      // the client left: the runner stops now; this stream ends without waiting for its answer
      if (!this.pending.delete(id)) return;
      this.send({ type: 'cancel', id });
      queue.push({ error: signal.reason });
      queue.end();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    this.send({ type: 'generate', id, input, params });
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

  async unload(): Promise<void> {
    await this.close();
    this.closing = false;
    this.loaded = false;
    this.current = { status: 'disabled', detail: 'unloaded: loads again on the next request that names it' };
  }

  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.restartTimer);
    this.current = { status: 'disabled', detail: 'closed' };
    this.settled();
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    this.send({ type: 'close' });
    const timer = setTimeout(() => child.kill('SIGKILL'), CLOSE_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  }
}
