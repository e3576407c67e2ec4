/** Asks /health every 50 ms while a test attacks the service; reports latencies and failures. */
import fs from 'node:fs';

export interface ProbeStats {
  count: number;
  failures: number;
  p50: number;
  p99: number;
  max: number;
}

export class HealthProber {
  private readonly latencies: number[] = [];
  private failures = 0;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly url: string,
    private readonly intervalMs = 50,
  ) {}

  start(): void {
    this.running ??= this.loop();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const started = performance.now();
      try {
        const res = await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(30_000) });
        await res.arrayBuffer();
        if (res.status !== 200) this.failures++;
      } catch {
        this.failures++;
      }
      const ms = performance.now() - started;
      this.latencies.push(ms);
      await new Promise((r) => setTimeout(r, Math.max(0, this.intervalMs - ms)));
    }
  }

  /** Stops probing (idempotent) and returns what was seen. */
  async stop(): Promise<ProbeStats> {
    this.stopped = true;
    await this.running;
    const sorted = [...this.latencies].sort((a, b) => a - b);
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
    return { count: sorted.length, failures: this.failures, p50: at(0.5), p99: at(0.99), max: sorted.at(-1) ?? 0 };
  }
}

/** A process's peak resident memory (VmHWM) in MB, from /proc. */
export function peakRssMb(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round(kb / 1024);
}
