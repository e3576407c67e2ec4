/**
 * Sample-rate conversion with libsamplerate (compiled to WASM): whole buffers for decoded uploads,
 * and a stateful stream converter for synthesized speech that arrives in chunks (the filter state
 * carries across chunks, so chunk edges make no clicks).
 */
import libsamplerate from '@alexanderolsen/libsamplerate-js';
import { float32ToInt16, int16ToFloat32 } from './pcm.ts';

const QUALITY = libsamplerate.ConverterType.SRC_SINC_FASTEST;

export async function resample(samples: Float32Array, from: number, to: number): Promise<Float32Array> {
  if (samples.length === 0 || from === to) return samples;
  const src = await libsamplerate.create(1, from, to, { converterType: QUALITY });
  try {
    return src.simple(samples);
  } finally {
    src.destroy();
  }
}

export interface StreamResampler {
  push(samples: Int16Array): Int16Array;
  close(): void;
}

type Converter = Awaited<ReturnType<typeof libsamplerate.create>>;

/**
 * Idle converters by rate pair. Creating one instantiates a WASM module (~10 ms, and its first
 * calls run cold), which would land on every synthesis' first chunk; a reset one is reused instead.
 */
const idle = new Map<string, Converter[]>();
const POOL_PER_PAIR = 8;

/** A converter for one mono stream from `from` Hz to `to` Hz; pass-through when they match. */
export async function createStreamResampler(from: number, to: number): Promise<StreamResampler> {
  if (from === to) return { push: (samples) => samples, close: () => {} };
  const key = `${from}:${to}`;
  const src = idle.get(key)?.pop() ?? (await libsamplerate.create(1, from, to, { converterType: QUALITY }));
  let closed = false;
  return {
    push(samples) {
      if (samples.length === 0) return samples;
      return float32ToInt16(src.full(int16ToFloat32(samples)));
    },
    close() {
      if (closed) return;
      closed = true;
      const pool = idle.get(key) ?? [];
      if (pool.length >= POOL_PER_PAIR) return src.destroy();
      src.inputSampleRate = from; // re-initializes the filter state for the next stream
      pool.push(src);
      idle.set(key, pool);
    },
  };
}
