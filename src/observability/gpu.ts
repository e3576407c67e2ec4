/**
 * Per-GPU utilization and memory gauges, read with `nvidia-smi` when it is on PATH. On a host with
 * no NVIDIA GPU the gauges are never registered, so /metrics shows none.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Metrics } from './metrics.ts';

export interface GpuSample {
  index: string;
  name: string;
  utilization: number;
  memoryUsedBytes: number;
  memoryTotalBytes: number;
}

const QUERY = ['--query-gpu=index,name,utilization.gpu,memory.used,memory.total', '--format=csv,noheader,nounits'];
const MIB = 1024 * 1024;

/** Parses `nvidia-smi --query-gpu=index,name,utilization.gpu,memory.used,memory.total --format=csv,noheader,nounits`. */
export function parseNvidiaSmi(csv: string): GpuSample[] {
  const samples: GpuSample[] = [];
  for (const line of csv.split('\n')) {
    const cols = line.split(',').map((c) => c.trim());
    if (cols.length !== 5) continue;
    const [index, name, util, used, total] = cols as [string, string, string, string, string];
    const numbers = [util, used, total].map(Number);
    if (numbers.some((n) => !Number.isFinite(n))) continue;
    samples.push({ index, name, utilization: numbers[0]! / 100, memoryUsedBytes: numbers[1]! * MIB, memoryTotalBytes: numbers[2]! * MIB });
  }
  return samples;
}

export function findOnPath(binary: string, envPath = process.env.PATH ?? ''): string | undefined {
  for (const dir of envPath.split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, binary);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export class GpuSampler {
  private timer: NodeJS.Timeout | undefined;
  private readonly utilization;
  private readonly memoryUsed;
  private readonly memoryTotal;

  constructor(
    private readonly binary: string,
    metrics: Metrics,
    private readonly logger: Logger,
  ) {
    const labels = ['gpu', 'name'] as const;
    this.utilization = metrics.gauge('gpu_utilization_ratio', 'GPU utilization (0-1) per device, from nvidia-smi.', labels);
    this.memoryUsed = metrics.gauge('gpu_memory_used_bytes', 'GPU memory in use per device, from nvidia-smi.', labels);
    this.memoryTotal = metrics.gauge('gpu_memory_total_bytes', 'GPU memory per device, from nvidia-smi.', labels);
  }

  sample(): Promise<GpuSample[]> {
    return new Promise((resolve) => {
      execFile(this.binary, QUERY, { timeout: 5000 }, (error, stdout) => {
        if (error) {
          this.logger.warn({ err: error.message }, 'nvidia-smi failed; GPU gauges not updated');
          resolve([]);
          return;
        }
        const samples = parseNvidiaSmi(stdout);
        for (const s of samples) {
          const labels = { gpu: s.index, name: s.name };
          this.utilization.set(labels, s.utilization);
          this.memoryUsed.set(labels, s.memoryUsedBytes);
          this.memoryTotal.set(labels, s.memoryTotalBytes);
        }
        resolve(samples);
      });
    });
  }

  start(intervalSeconds: number): void {
    void this.sample();
    this.timer = setInterval(() => void this.sample(), intervalSeconds * 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
