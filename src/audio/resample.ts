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

/** A converter for one mono stream from `from` Hz to `to` Hz; pass-through when they match. */
export async function createStreamResampler(from: number, to: number): Promise<StreamResampler> {
  if (from === to) return { push: (samples) => samples, close: () => {} };
  const src = await libsamplerate.create(1, from, to, { converterType: QUALITY });
  let closed = false;
  return {
    push(samples) {
      if (samples.length === 0) return samples;
      return float32ToInt16(src.full(int16ToFloat32(samples)));
    },
    close() {
      if (!closed) src.destroy();
      closed = true;
    },
  };
}
