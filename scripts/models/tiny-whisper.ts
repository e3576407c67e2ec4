/**
 * Generates a tiny whisper.cpp model (legacy ggml format, as `whisper_model_load` reads it:
 * magic 0x67676d6c, 11 int32 hparams, the 80×201 mel filter bank, the vocabulary, then tensors
 * named like OpenAI's checkpoint) for tests: real architecture, loadable by whisper.cpp, with
 * decoder weights arranged so that for any audio it transcribes TINY_WHISPER_TEXT as one segment
 * from 0.00 s to TINY_WHISPER_END s.
 *
 * How: attention outputs are zero, so the decoder's residual stream at each step holds only the
 * previous token's embedding. Tokens of the answer (and SOT, the two timestamps, EOT) get one-hot
 * embeddings; each block's MLP turns "previous = k" into "next token's direction", and with the
 * output tied to the token embedding the next token wins by a wide logit margin. Everything else
 * (encoder, other tokens) is random or zero, so the compute is real.
 *
 *   npx tsx scripts/models/tiny-whisper.ts out.bin [--state 64] [--layers 1] [--heads 2] [--audio-ctx 1500] [--random]
 *   --random: random weights everywhere (realistic compute for benchmarks; garbage text).
 */
import fs from 'node:fs';
import { numberFlags, random, writeOnce } from './common.ts';
import { toF16 } from './gguf-writer.ts';

export const TINY_WHISPER_TEXT = 'Hello from the tiny whisper model.';
export const TINY_WHISPER_END = 1.0;
/** The answer as GPT-2 byte-level BPE pieces (a leading space belongs to the word). */
const WORDS = [' Hello', ' from', ' the', ' tiny', ' whisper', ' model.'];

// English-only vocabulary layout (n_vocab 51864), as whisper.cpp expects it.
const N_VOCAB = 51864;
const EOT = 50256;
const SOT = 50257;
const NOSP = 50361; // <|nospeech|> (whisper.cpp never samples it; no_speech_prob reads it at SOT)
const BEG = 50363; // <|0.00|>; each further timestamp token adds 0.02 s
const N_MELS = 80;
const N_FFT = 201;

export interface TinyWhisperOptions {
  state?: number;
  layers?: number;
  heads?: number;
  audioCtx?: number;
  textCtx?: number;
  random?: boolean;
  /** Where the one segment ends, seconds (default TINY_WHISPER_END). whisper.cpp seeks to it, so a
   * value near 30 makes one decoder pass per 30 s window, as a real model on real speech does. */
  end?: number;
  /** Give <|nospeech|> the embedding of <|0.00|>: at SOT both get the same logit, so the model's
   * no-speech probability is 0.5 (by default it is ~0). The transcript does not change. */
  noSpeechHalf?: boolean;
  /** A hallucination on silence, as OpenAI's decoder sees one: <|nospeech|> gets 1.5× the
   * embedding of <|0.00|> (P(no speech) ≈ 1 at SOT) and each word has 4 twins (tokens with the same
   * embedding, higher ids: greedy decoding still picks the word), so every word has p = 0.2
   * (avg_logprob ≈ −1.6). whisper.cpp then falls back to sampling at higher temperatures, so the
   * text is twin tokens ("<2000><2006>…"): garbage, as a hallucination is. */
  unsure?: boolean;
}


/** Slaney-style mel filter bank, 80 filters over 201 FFT bins of a 400-point FFT at 16 kHz. */
function melFilters(): Float32Array {
  const hzToMel = (f: number) => 2595 * Math.log10(1 + f / 700);
  const melToHz = (m: number) => 700 * (10 ** (m / 2595) - 1);
  const out = new Float32Array(N_MELS * N_FFT);
  const maxMel = hzToMel(8000);
  const points = Array.from({ length: N_MELS + 2 }, (_, i) => melToHz((maxMel * i) / (N_MELS + 1)));
  for (let m = 0; m < N_MELS; m++) {
    const [lo, mid, hi] = [points[m]!, points[m + 1]!, points[m + 2]!];
    for (let k = 0; k < N_FFT; k++) {
      const f = (k * 16000) / 400;
      const w = f < lo || f > hi ? 0 : f <= mid ? (f - lo) / (mid - lo) : (hi - f) / (hi - mid);
      out[m * N_FFT + k] = (w * 2) / (hi - lo);
    }
  }
  return out;
}

class Sink {
  private readonly parts: Buffer[] = [];
  i32(...values: number[]) {
    const b = Buffer.alloc(4 * values.length);
    values.forEach((v, i) => b.writeInt32LE(v, i * 4));
    this.parts.push(b);
  }
  f32s(values: Float32Array) {
    this.parts.push(Buffer.from(values.buffer, values.byteOffset, values.byteLength));
  }
  bytes(b: Buffer) {
    this.parts.push(b);
  }
  buffer() {
    return Buffer.concat(this.parts);
  }
}

export function tinyWhisper(options: TinyWhisperOptions = {}): Buffer {
  const state = options.state ?? 64;
  const layers = options.layers ?? 1;
  const heads = options.heads ?? 2;
  const audioCtx = options.audioCtx ?? 1500;
  const textCtx = options.textCtx ?? 448;
  const rand = random(4321);
  const noise = (n: number, scale: number) => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * scale);
  const zeros = (n: number) => new Float32Array(n);
  const ones = (n: number) => new Float32Array(n).fill(1);

  const sink = new Sink();
  sink.i32(0x67676d6c);
  sink.i32(N_VOCAB, audioCtx, state, heads, layers, textCtx, state, heads, layers, N_MELS, 1 /* ftype: mostly F16 */);
  sink.i32(N_MELS, N_FFT);
  sink.f32s(melFilters());

  // Vocabulary: ids 0..EOT-1 are text tokens. Unused ones get unique filler strings.
  const wordIds = WORDS.map((_, i) => 1000 + i);
  const text = new Map(WORDS.map((w, i) => [wordIds[i]!, w]));
  text.set(220, ' '); // whisper.cpp looks up " " by text (suppress_blank), as in the GPT-2 vocabulary
  sink.i32(EOT);
  for (let id = 0; id < EOT; id++) {
    const piece = Buffer.from(text.get(id) ?? `<${id}>`, 'utf8');
    sink.i32(piece.length);
    sink.bytes(piece);
  }

  // ftype 1: weight matrices and convolutions in F16 (this whisper.cpp's conv needs F16), the
  // rest (positional embeddings, biases, norms) in F32 — as whisper.cpp's own converter writes.
  const tensor = (name: string, dims: number[], data: Float32Array) => {
    const f16 = /(conv\d\.weight|mlp\.\d\.weight|attn\.\w+\.weight|token_embedding\.weight)$/.test(name);
    const nameBytes = Buffer.from(name, 'utf8');
    sink.i32(dims.length, nameBytes.length, f16 ? 1 : 0, ...dims);
    sink.bytes(nameBytes);
    if (data.length !== dims.reduce((a, b) => a * b, 1)) throw new Error(`${name}: size mismatch`);
    if (f16) {
      const half = Uint16Array.from(data, toF16);
      sink.bytes(Buffer.from(half.buffer, half.byteOffset, half.byteLength));
    } else sink.f32s(data);
  };
  const randomAll = options.random === true;
  const w = (n: number) => (randomAll ? noise(n, 0.05) : zeros(n));

  // --- encoder: random (real compute); its output only reaches the decoder through cross-attention
  tensor('encoder.positional_embedding', [state, audioCtx], noise(state * audioCtx, 0.1));
  tensor('encoder.conv1.weight', [3, N_MELS, state], noise(3 * N_MELS * state, 0.05));
  tensor('encoder.conv1.bias', [1, state], zeros(state));
  tensor('encoder.conv2.weight', [3, state, state], noise(3 * state * state, 0.05));
  tensor('encoder.conv2.bias', [1, state], zeros(state));
  tensor('encoder.ln_post.weight', [state], ones(state));
  tensor('encoder.ln_post.bias', [state], zeros(state));
  for (let i = 0; i < layers; i++) {
    const b = `encoder.blocks.${i}`;
    tensor(`${b}.mlp_ln.weight`, [state], ones(state));
    tensor(`${b}.mlp_ln.bias`, [state], zeros(state));
    tensor(`${b}.mlp.0.weight`, [state, 4 * state], noise(4 * state * state, 0.05));
    tensor(`${b}.mlp.0.bias`, [4 * state], zeros(4 * state));
    tensor(`${b}.mlp.2.weight`, [4 * state, state], noise(4 * state * state, 0.05));
    tensor(`${b}.mlp.2.bias`, [state], zeros(state));
    tensor(`${b}.attn_ln.weight`, [state], ones(state));
    tensor(`${b}.attn_ln.bias`, [state], zeros(state));
    for (const p of ['query', 'key', 'value', 'out']) {
      tensor(`${b}.attn.${p}.weight`, [state, state], noise(state * state, 0.05));
      if (p !== 'key') tensor(`${b}.attn.${p}.bias`, [state], zeros(state));
    }
  }

  // --- decoder: the deterministic chain SOT → <|0.00|> → words… → <|END|> → EOT
  const endTs = BEG + Math.round((options.end ?? TINY_WHISPER_END) / 0.02);
  const chain = [SOT, BEG, ...wordIds, endTs, EOT];
  if (chain.length > state) throw new Error('state too small for the chain');
  const dimOf = new Map(chain.map((tok, k) => [tok, k]));
  const S = 10; // embedding scale: logit margins of ~S × sqrt(state)
  const tokenEmbedding = randomAll ? noise(N_VOCAB * state, 0.05) : zeros(N_VOCAB * state);
  if (!randomAll) for (const [tok, d] of dimOf) tokenEmbedding[tok * state + d] = S;
  if (!randomAll && options.noSpeechHalf) tokenEmbedding[NOSP * state + dimOf.get(BEG)!] = S;
  if (!randomAll && options.unsure) {
    tokenEmbedding[NOSP * state + dimOf.get(BEG)!] = 1.5 * S;
    wordIds.forEach((id, i) => {
      for (let j = 0; j < 4; j++) tokenEmbedding[(2000 + 4 * i + j) * state + dimOf.get(id)!] = S;
    });
  }

  const fc1 = zeros(4 * state * state);
  const fc1Bias = zeros(4 * state);
  const fc2 = zeros(4 * state * state);
  if (!randomAll) {
    // After the block's LayerNorm, "previous token = chain[k]" is ≈ sqrt(state) at dim k and
    // slightly negative elsewhere. Hidden unit k fires only then (bias −3 keeps the others off),
    // and writes (C·e_next − e_prev)·S into the residual stream.
    const active = Math.sqrt(state) - 3;
    const C = 3;
    for (let k = 0; k + 1 < chain.length; k++) {
      fc1[k * state + k] = 1; // [state, 4*state]: row = hidden unit, contiguous over the input
      fc1Bias[k] = -3;
      const next = k + 1;
      fc2[next * 4 * state + k] = (C * S) / active; // [4*state, state]: row = output dim
      fc2[k * 4 * state + k] = -S / active;
    }
    for (let k = chain.length - 1; k < 4 * state; k++) if (k >= chain.length - 1) fc1Bias[k] = -3;
  }
  tensor('decoder.positional_embedding', [state, textCtx], zeros(state * textCtx));
  tensor('decoder.token_embedding.weight', [state, N_VOCAB], tokenEmbedding);
  tensor('decoder.ln.weight', [state], ones(state));
  tensor('decoder.ln.bias', [state], zeros(state));
  for (let i = 0; i < layers; i++) {
    const b = `decoder.blocks.${i}`;
    const useChain = i === 0 && !randomAll; // the first block maps; later ones pass through
    tensor(`${b}.mlp_ln.weight`, [state], ones(state));
    tensor(`${b}.mlp_ln.bias`, [state], zeros(state));
    tensor(`${b}.mlp.0.weight`, [state, 4 * state], useChain ? fc1 : w(4 * state * state));
    tensor(`${b}.mlp.0.bias`, [4 * state], useChain ? fc1Bias : new Float32Array(4 * state).fill(randomAll ? 0 : -3));
    tensor(`${b}.mlp.2.weight`, [4 * state, state], useChain ? fc2 : w(4 * state * state));
    tensor(`${b}.mlp.2.bias`, [state], zeros(state));
    for (const attn of ['attn', 'cross_attn']) {
      tensor(`${b}.${attn}_ln.weight`, [state], ones(state));
      tensor(`${b}.${attn}_ln.bias`, [state], zeros(state));
      for (const p of ['query', 'key', 'value', 'out']) {
        const weight = p === 'out' && !randomAll ? zeros(state * state) : noise(state * state, 0.05);
        tensor(`${b}.${attn}.${p}.weight`, [state, state], weight);
        if (p !== 'key') tensor(`${b}.${attn}.${p}.bias`, [state], zeros(state));
      }
    }
  }
  return sink.buffer();
}

export function ensureTinyWhisper(file: string, options: TinyWhisperOptions = {}): string {
  return writeOnce(file, () => tinyWhisper(options));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [out, ...rest] = process.argv.slice(2);
  if (!out) throw new Error('usage: tiny-whisper.ts <out.bin> [--state N] [--layers N] [--heads N] [--audio-ctx N] [--random]');
  const flag = numberFlags(rest);
  fs.writeFileSync(out, tinyWhisper({ state: flag('state'), layers: flag('layers'), heads: flag('heads'), audioCtx: flag('audio-ctx'), random: rest.includes('--random') }));
  console.log(`wrote ${out} (${fs.statSync(out).size} bytes)`);
}
