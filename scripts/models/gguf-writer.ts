/**
 * A minimal GGUF (v3) writer, no dependencies: metadata key/values and F32, F16 or Q8_0 tensors,
 * laid out the way llama.cpp's gguf reader expects (little-endian, tensor data aligned to 32 bytes).
 */
import fs from 'node:fs';

const enum T {
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
}

export type GgufValue =
  | { type: 'u32'; value: number }
  | { type: 'i32'; value: number }
  | { type: 'f32'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'string[]'; value: string[] }
  | { type: 'f32[]'; value: number[] }
  | { type: 'i32[]'; value: number[] };

interface Tensor {
  name: string;
  /** ggml order: ne[0] (contiguous) first. */
  dims: number[];
  /** The tensor's bytes in its ggml type. */
  data: Float32Array | Uint16Array | Uint8Array;
  type: number;
}

/** How a tensor is stored: F32, F16, or Q8_0 (8-bit blocks, how quantized checkpoints are often shipped). */
export type TensorType = 'f32' | 'f16' | 'q8_0';
const GGML_TYPE: Record<TensorType, number> = { f32: 0, f16: 1, q8_0: 8 };
const Q8_0_BLOCK = 32;

/** IEEE 754 half precision bits of `value` (round to nearest even). */
export function toF16(value: number): number {
  const f32 = new Float32Array([value]);
  const bits = new Uint32Array(f32.buffer)[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exp = ((bits >>> 23) & 0xff) - 127 + 15;
  const mant = bits & 0x7fffff;
  if (exp >= 31) return sign | 0x7c00;
  if (exp <= 0) {
    if (exp < -10) return sign;
    const m = (mant | 0x800000) >> (1 - exp);
    return sign | ((m + 0x1000) >> 13);
  }
  const rounded = (exp << 10) | (mant >> 13);
  const rest = mant & 0x1fff;
  return sign | (rest > 0x1000 || (rest === 0x1000 && rounded & 1) ? rounded + 1 : rounded);
}

/**
 * ggml's Q8_0 layout: each run of 32 values becomes one block of an F16 scale `d` (the run's
 * largest magnitude / 127) and 32 signed bytes `round(x / d)`; rows must be a multiple of 32 long.
 */
export function toQ8_0(values: Float32Array): Uint8Array {
  if (values.length % Q8_0_BLOCK) throw new Error(`Q8_0 needs a multiple of ${Q8_0_BLOCK} values, got ${values.length}`);
  const blocks = values.length / Q8_0_BLOCK;
  const out = new Uint8Array(blocks * (2 + Q8_0_BLOCK));
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    const run = values.subarray(b * Q8_0_BLOCK, (b + 1) * Q8_0_BLOCK);
    const amax = run.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const d = amax / 127;
    const at = b * (2 + Q8_0_BLOCK);
    view.setUint16(at, toF16(d), true);
    for (let i = 0; i < Q8_0_BLOCK; i++) view.setInt8(at + 2 + i, d ? Math.round(run[i]! / d) : 0);
  }
  return out;
}

const ALIGNMENT = 32;

type Scalar = 'u32' | 'i32' | 'f32' | 'bool' | 'string';
const TYPE_IDS: Record<Scalar, number> = { u32: T.UINT32, i32: T.INT32, f32: T.FLOAT32, bool: T.BOOL, string: T.STRING };

function writeScalar(out: ByteSink, type: Scalar, value: string | number | boolean): void {
  if (type === 'u32') out.u32(value as number);
  else if (type === 'i32') out.i32(value as number);
  else if (type === 'f32') out.f32(value as number);
  else if (type === 'bool') out.push(Buffer.from([value ? 1 : 0]));
  else out.str(value as string);
}

class ByteSink {
  private chunks: Buffer[] = [];
  length = 0;
  push(buf: Buffer): void {
    this.chunks.push(buf);
    this.length += buf.length;
  }
  u32(v: number) {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  i32(v: number) {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    this.push(b);
  }
  u64(v: number) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  f32(v: number) {
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    this.push(b);
  }
  str(s: string) {
    const bytes = Buffer.from(s, 'utf8');
    this.u64(bytes.length);
    this.push(bytes);
  }
  pad(to: number) {
    const rem = this.length % to;
    if (rem) this.push(Buffer.alloc(to - rem));
  }
  concat(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

export class GgufWriter {
  private readonly kv: [string, GgufValue][] = [];
  private readonly tensors: Tensor[] = [];

  set(key: string, value: GgufValue): this {
    this.kv.push([key, value]);
    return this;
  }

  /** Adds a tensor stored as `type` (F16 and Q8_0 as real GGUF checkpoints often are). */
  tensor(name: string, dims: number[], data: Float32Array, type: TensorType = 'f32'): this {
    const count = dims.reduce((a, b) => a * b, 1);
    if (count !== data.length) throw new Error(`${name}: ${data.length} values for dims ${dims.join('x')}`);
    const bytes = type === 'f16' ? Uint16Array.from(data, toF16) : type === 'q8_0' ? toQ8_0(data) : data;
    this.tensors.push({ name, dims, data: bytes, type: GGML_TYPE[type] });
    return this;
  }

  toBuffer(): Buffer {
    const out = new ByteSink();
    out.push(Buffer.from('GGUF', 'ascii'));
    out.u32(3);
    out.u64(this.tensors.length);
    out.u64(this.kv.length);
    for (const [key, v] of this.kv) {
      out.str(key);
      if (v.type.endsWith('[]')) {
        const items = v.value as (string | number)[];
        const element = v.type.slice(0, -2) as Scalar;
        out.u32(T.ARRAY);
        out.u32(TYPE_IDS[element]);
        out.u64(items.length);
        for (const item of items) writeScalar(out, element, item);
      } else {
        out.u32(TYPE_IDS[v.type as Scalar]);
        writeScalar(out, v.type as Scalar, v.value as string | number | boolean);
      }
    }
    let offset = 0;
    const offsets: number[] = [];
    for (const t of this.tensors) {
      offsets.push(offset);
      offset += t.data.byteLength;
      offset = Math.ceil(offset / ALIGNMENT) * ALIGNMENT;
    }
    this.tensors.forEach((t, i) => {
      out.str(t.name);
      out.u32(t.dims.length);
      for (const d of t.dims) out.u64(d);
      out.u32(t.type);
      out.u64(offsets[i]!);
    });
    out.pad(ALIGNMENT);
    for (const t of this.tensors) {
      out.push(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
      out.pad(ALIGNMENT);
    }
    return out.concat();
  }

  write(path: string): void {
    fs.writeFileSync(path, this.toBuffer());
  }
}
