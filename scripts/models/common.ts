/** Helpers shared by the tiny-model generators. */
import fs from 'node:fs';
import path from 'node:path';

/** Deterministic pseudo-random numbers in [0, 1) (mulberry32), so generated files are reproducible. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Writes `build()` to `file` unless it exists (atomically: concurrent test processes may race). */
export function writeOnce(file: string, build: () => Buffer): string {
  if (!fs.existsSync(file)) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, build());
    fs.renameSync(tmp, file);
  }
  return file;
}

/** `--name value` flags of a generator's command line, as numbers. */
export function numberFlags(args: string[]): (name: string) => number | undefined {
  return (name) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? Number(args[i + 1]) : undefined;
  };
}
