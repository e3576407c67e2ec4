/**
 * A minimal GGUF (v3) writer, no dependencies: metadata key/values and F32 tensors, laid out the
 * way llama.cpp's gguf reader expects (little-endian, tensor data aligned to 32 bytes).
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
  data: Float32Array;
}

const ALIGNMENT = 32;

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

  tensor(name: string, dims: number[], data: Float32Array): this {
    const count = dims.reduce((a, b) => a * b, 1);
    if (count !== data.length) throw new Error(`${name}: ${data.length} values for dims ${dims.join('x')}`);
    this.tensors.push({ name, dims, data });
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
      switch (v.type) {
        case 'u32':
          out.u32(T.UINT32);
          out.u32(v.value);
          break;
        case 'i32':
          out.u32(T.INT32);
          out.i32(v.value);
          break;
        case 'f32':
          out.u32(T.FLOAT32);
          out.f32(v.value);
          break;
        case 'bool':
          out.u32(T.BOOL);
          out.push(Buffer.from([v.value ? 1 : 0]));
          break;
        case 'string':
          out.u32(T.STRING);
          out.str(v.value);
          break;
        case 'string[]':
          out.u32(T.ARRAY);
          out.u32(T.STRING);
          out.u64(v.value.length);
          for (const s of v.value) out.str(s);
          break;
        case 'f32[]':
          out.u32(T.ARRAY);
          out.u32(T.FLOAT32);
          out.u64(v.value.length);
          for (const n of v.value) out.f32(n);
          break;
        case 'i32[]':
          out.u32(T.ARRAY);
          out.u32(T.INT32);
          out.u64(v.value.length);
          for (const n of v.value) out.i32(n);
          break;
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
      out.u32(0); // GGML_TYPE_F32
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
