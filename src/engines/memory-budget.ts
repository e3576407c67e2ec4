/**
 * The memory budget of model runners (MODEL_MEMORY_BUDGET_MB): what each device may hold, what a
 * model needs there, and one admission lock per device so two loads cannot both pass the check
 * before either is counted. The registry (registry.ts) decides what to evict; this file only
 * parses, estimates and serializes.
 */
import fs from 'node:fs';
import path from 'node:path';

export const MIB = 1024 * 1024;

/** Budgets in bytes: `all` for every device (a plain number), or per device (`cpu=16000,cuda:0=80000`). */
export interface MemoryBudgets {
  all?: number;
  devices: Record<string, number>;
}

const DEVICE = /^(cpu|cuda:\d+|vulkan|metal)$/;

/**
 * Parses MODEL_MEMORY_BUDGET_MB: `16000` (each device), or `cpu=16000,cuda:0=80000` (a device not
 * named has no budget). Returns the budgets or every problem found.
 */
export function parseMemoryBudget(text: string): { budgets?: MemoryBudgets; problems: string[] } {
  const problems: string[] = [];
  // the configuration quotes the whole value after each problem: name the part, not the value again
  const mb = (v: string, where?: string): number | undefined => {
    if (!/^\d+(\.\d+)?$/.test(v) || Number(v) <= 0) {
      problems.push(`${where ? `${where}: ` : ''}must be a positive number of MB, or device=MB pairs such as cpu=16000,cuda:0=80000`);
      return undefined;
    }
    return Math.round(Number(v) * MIB);
  };
  if (!text.includes('=')) {
    const all = mb(text);
    return all === undefined ? { problems } : { budgets: { all, devices: {} }, problems };
  }
  const devices: Record<string, number> = {};
  const seen = new Set<string>();
  for (const part of text.split(',').map((p) => p.trim())) {
    const [name, value, ...rest] = part.split('=').map((s) => s.trim().toLowerCase());
    if (!name || value === undefined || rest.length > 0) {
      problems.push(`"${part}": must be device=MB, e.g. cpu=16000 or cuda:0=80000`);
      continue;
    }
    const device = name === 'cuda' ? 'cuda:0' : name;
    if (!DEVICE.test(device)) problems.push(`"${part}": unknown device "${name}" (cpu, cuda:N, vulkan or metal)`);
    else if (seen.has(device)) problems.push(`"${part}": ${device} is named twice`);
    seen.add(device);
    const bytes = mb(value, `"${part}"`);
    if (bytes !== undefined && DEVICE.test(device)) devices[device] = bytes;
  }
  return problems.length > 0 ? { problems } : { budgets: { devices }, problems };
}

/** The budget of one device in bytes; undefined: none. */
export function budgetOf(budgets: MemoryBudgets | undefined, device: string): number | undefined {
  if (!budgets) return undefined;
  return budgets.devices[device] ?? budgets.all;
}

/**
 * The device a model counts against: `cuda` is cuda:0; `auto` counts against `cpu` (the runner does
 * not report where llama.cpp / whisper.cpp placed the model, so the host's memory is the safe guess).
 */
export function accountingDevice(device: string | undefined): string {
  const d = (device ?? 'cpu').trim().toLowerCase();
  if (d === 'auto' || d === '') return 'cpu';
  return d === 'cuda' ? 'cuda:0' : d;
}

/** GGUF: the weights plus their context (KV cache, compute buffers), taken as a quarter of the file. */
export const GGUF_FACTOR = 1.25;
/**
 * What an LLM runner process holds besides its model: Node, llama.cpp and its buffers (measured
 * 233–247 MiB RSS with a 1 MB GGUF). Without it a small model counted as its file size alone, and
 * its first load could overrun the budget by that much.
 */
export const LLM_RUNNER_BYTES = 200 * MIB;
/**
 * Whisper: the ggml file plus its runner (~180 MiB idle) and the decoding state it keeps once it has
 * transcribed (compute buffers, KV caches: ~170–210 MiB on a tiny-sized model, more on larger ones;
 * measured 357–396 MiB in all with an 8 MB model).
 */
export const WHISPER_ALLOWANCE_BYTES = 400 * MIB;

/**
 * Estimates a model's need from its file before it is loaded: GGUF size × GGUF_FACTOR +
 * LLM_RUNNER_BYTES; Whisper size + WHISPER_ALLOWANCE_BYTES. A file not on disk yet (an `hf:` URI or tier not pulled) gives 0:
 * the measured RSS takes over once the model has loaded.
 */
export function estimateBytes(capability: 'llm' | 'stt', spec: string): number {
  if (spec.startsWith('hf:') || (!spec.includes('/') && !/\.(gguf|bin)$/i.test(spec))) return 0;
  let size: number;
  try {
    size = fs.statSync(path.resolve(spec)).size;
  } catch {
    return 0;
  }
  return capability === 'llm' ? Math.round(size * GGUF_FACTOR) + LLM_RUNNER_BYTES : size + WHISPER_ALLOWANCE_BYTES;
}

/** What the registry needs to account a model: its device and how its need is derived. */
export interface ModelMemory {
  device: string;
  /** `memory_mb` of the models file, in bytes: authoritative when given. */
  declaredBytes?: number;
  /** From the model file (estimateBytes). */
  estimatedBytes: number;
}

/**
 * The need of a model: `memory_mb` when declared (the operator knows, and RSS does not show GPU
 * memory); otherwise the larger of the estimate and what its runner measures now.
 */
export function needBytes(memory: ModelMemory, measuredBytes: number): number {
  return memory.declaredBytes ?? Math.max(memory.estimatedBytes, measuredBytes);
}

/** One lock per device: admission decisions (check, evict, start the load) run one at a time. */
export class DeviceLocks {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(device: string, task: () => Promise<T>): Promise<T> {
    const before = this.tails.get(device) ?? Promise.resolve();
    let done!: () => void;
    const tail = new Promise<void>((resolve) => (done = resolve));
    this.tails.set(device, tail);
    await before;
    try {
      return await task();
    } finally {
      done();
      if (this.tails.get(device) === tail) this.tails.delete(device);
    }
  }
}
