/**
 * Prometheus metrics on a registry of the app's own (so several apps in one test process never
 * collide). Routes are labelled by their template, never the raw path.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export type Outcome = 'success' | 'error' | 'timeout' | 'aborted' | 'rejected';

const LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export class Metrics {
  readonly registry = new Registry();

  readonly httpDuration = this.histogram(
    'http_request_duration_seconds',
    'HTTP request duration by method, route template and status code.',
    ['method', 'route', 'status_code'],
  );

  readonly dependencyDuration = this.histogram(
    'dependency_duration_seconds',
    'Duration of calls to a dependency (an engine by its id: llama-cpp, whisper-cpp, openai, openaudio, espeak; or redis) by operation and outcome.',
    ['dependency', 'operation', 'outcome'],
  );

  readonly dialogueDuration = this.histogram(
    'dialogue_turn_duration_seconds',
    'End-to-end duration of one dialogue turn (audio or text in, reply out) by outcome.',
    ['outcome'],
  );

  readonly engineReady = new Gauge({
    name: 'engine_ready',
    help: '1 when the engine is ready to serve, 0 otherwise.',
    labelNames: ['capability', 'engine'] as const,
    registers: [this.registry],
  });

  readonly httpInFlight = new Gauge({
    name: 'http_requests_in_flight',
    help: 'HTTP requests received and not yet answered (WebSockets are counted in websocket_connections).',
    registers: [this.registry],
  });

  readonly websocketConnections = new Gauge({
    name: 'websocket_connections',
    help: 'WebSockets open now, by route.',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });

  readonly upstreamRequests = new Counter({
    name: 'upstream_requests_total',
    help: 'HTTP attempts to upstream servers (retries included) by upstream and outcome (status code, connection_error, timeout, aborted).',
    labelNames: ['upstream', 'outcome'] as const,
    registers: [this.registry],
  });

  private readonly httpChildren = new Map<string, { observe: (seconds: number) => void }>();

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  /** Observes one HTTP request; label children are cached (label hashing showed in profiles). */
  observeHttp(method: string, route: string, statusCode: number, seconds: number): void {
    const key = `${method} ${route} ${statusCode}`;
    let child = this.httpChildren.get(key);
    if (!child) {
      child = this.httpDuration.labels({ method, route, status_code: String(statusCode) });
      this.httpChildren.set(key, child);
    }
    child.observe(seconds);
  }

  counter<L extends string>(name: string, help: string, labelNames: readonly L[] = []): Counter<L> {
    return (this.registry.getSingleMetric(name) as Counter<L> | undefined) ?? new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  gauge<L extends string>(name: string, help: string, labelNames: readonly L[] = []): Gauge<L> {
    return (this.registry.getSingleMetric(name) as Gauge<L> | undefined) ?? new Gauge({ name, help, labelNames, registers: [this.registry] });
  }

  histogram<L extends string>(name: string, help: string, labelNames: readonly L[] = [], buckets = LATENCY_BUCKETS): Histogram<L> {
    return (
      (this.registry.getSingleMetric(name) as Histogram<L> | undefined) ??
      new Histogram({ name, help, labelNames, buckets, registers: [this.registry] })
    );
  }
}

export function outcomeOf(error: unknown): Outcome {
  const name = (error as { name?: string } | null)?.name;
  if (name === 'AbortError') return 'aborted';
  if (name === 'TimeoutError' || /(^|_)timeout$/.test((error as { code?: unknown } | null)?.code?.toString() ?? '')) return 'timeout';
  return 'error';
}
