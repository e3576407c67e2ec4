/**
 * Generates a tiny Gemma 3 GGUF for tests and benchmarks: real `gemma3` architecture that
 * llama.cpp loads and runs, with weights arranged so the model deterministically answers
 * TINY_GEMMA_REPLY to any prompt (then ends its turn) — so tests can assert exact text through
 * the real engine.
 *
 * How: every attention and FFN block writes zero into the residual stream (attn_output and
 * ffn_down are zero; q/k/v/gate/up are random so the compute is real), so the final hidden state
 * is the current token's embedding. Embeddings are one-hot: each token of the reply owns one
 * dimension, every other token shares dimension 0. The output matrix maps dimension 0 to the first
 * reply token and each reply token's dimension to the next one, the last to <end_of_turn>, with a
 * logit margin large enough that any temperature/top-k/top-p picks it.
 *
 *   npx tsx scripts/models/tiny-gemma.ts out.gguf [--embd 64] [--blocks 6] [--ff 128] [--loop]
 */
import fs from 'node:fs';
import { numberFlags, random, writeOnce } from './common.ts';
import { GgufWriter, type TensorType } from './gguf-writer.ts';

export const TINY_GEMMA_REPLY = 'Hello from the tiny Gemma model.';
/** The reply as the model's tokens (SentencePiece: ▁ marks a preceding space). */
const REPLY_TOKENS = ['Hello', '▁from', '▁the', '▁tiny', '▁Gemma', '▁model.'];

export const GEMMA_CHAT_TEMPLATE =
  "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set first_user_prefix = messages[0]['content'] + '\n\n' %}{% set loop_messages = messages[1:] %}{% else %}{% set first_user_prefix = '' %}{% set loop_messages = messages %}{% endif %}{% for message in loop_messages %}{% if message['role'] == 'assistant' %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}";

export interface TinyGemmaOptions {
  embd?: number;
  blocks?: number;
  ff?: number;
  heads?: number;
  /** Never end the turn: after the reply, start it again (for throughput benchmarks). */
  loop?: boolean;
  /**
   * How far (in logits) the reply's next token stands above every other token: 80 by default, so
   * any sampling settings give the same text; ~1.5 makes sampling and penalties visibly change it.
   */
  logitGap?: number;
  /** How the block matrices are stored (default F32; real checkpoints are F16 or quantized, e.g. Q8_0). */
  weights?: TensorType;
}

const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, BYTE: 6 } as const;

function vocabulary(): { tokens: string[]; types: number[]; scores: number[] } {
  const tokens: string[] = [];
  const types: number[] = [];
  const scores: number[] = [];
  const add = (t: string, type: number, score = 0) => {
    if (tokens.includes(t)) return;
    tokens.push(t);
    types.push(type);
    scores.push(score);
  };
  add('<pad>', TOKEN_TYPE.CONTROL);
  add('<eos>', TOKEN_TYPE.CONTROL);
  add('<bos>', TOKEN_TYPE.CONTROL);
  add('<unk>', TOKEN_TYPE.UNKNOWN);
  add('<start_of_turn>', TOKEN_TYPE.CONTROL);
  add('<end_of_turn>', TOKEN_TYPE.CONTROL);
  for (let b = 0; b < 256; b++) add(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, TOKEN_TYPE.BYTE);
  // Single characters, so common text tokenizes without byte fallback.
  add('▁', TOKEN_TYPE.NORMAL, -1);
  for (let c = 0x21; c < 0x7f; c++) add(String.fromCharCode(c), TOKEN_TYPE.NORMAL, -1);
  add('\n', TOKEN_TYPE.NORMAL, -1);
  // Each reply token with all its prefixes (llama.cpp's SentencePiece merges only through
  // pieces in the vocabulary); longer pieces score higher so they win merges.
  for (const piece of REPLY_TOKENS) {
    const chars = [...piece];
    for (let n = 2; n <= chars.length; n++) add(chars.slice(0, n).join(''), TOKEN_TYPE.NORMAL, n);
  }
  return { tokens, types, scores };
}


export function tinyGemma(options: TinyGemmaOptions = {}): Buffer {
  const embd = options.embd ?? 64;
  const blocks = options.blocks ?? 6;
  const ff = options.ff ?? 128;
  const heads = options.heads ?? 2;
  const headDim = embd / heads;
  if (!Number.isInteger(headDim) || REPLY_TOKENS.length + 1 > embd) throw new Error('embd must divide by heads and exceed the reply length');
  const { tokens, types, scores } = vocabulary();
  const nVocab = tokens.length;
  const id = (t: string) => tokens.indexOf(t);
  const rand = random(1234);
  const noise = (n: number, scale: number) => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * scale);
  const ones = (n: number) => new Float32Array(n).fill(1); // Gemma norms are stored as 1 + w

  const replyIds = REPLY_TOKENS.map(id);
  const dimOf = new Map(replyIds.map((tok, k) => [tok, k + 1]));
  const embedding = new Float32Array(nVocab * embd);
  for (let tok = 0; tok < nVocab; tok++) embedding[tok * embd + (dimOf.get(tok) ?? 0)] = 1;

  // the final norm scales the one-hot hidden state to sqrt(embd): a weight of gap / sqrt(embd) gives a logit of `gap`
  const MARGIN = (options.logitGap ?? 80) / Math.sqrt(embd);
  const output = new Float32Array(nVocab * embd);
  output[replyIds[0]! * embd + 0] = MARGIN;
  replyIds.forEach((tok, k) => {
    const next = k + 1 < replyIds.length ? replyIds[k + 1]! : options.loop ? replyIds[0]! : id('<end_of_turn>');
    output[next * embd + dimOf.get(tok)!] = MARGIN;
  });

  const w = new GgufWriter()
    .set('general.architecture', { type: 'string', value: 'gemma3' })
    .set('general.name', { type: 'string', value: options.loop ? 'tiny-gemma3-loop' : 'tiny-gemma3' })
    .set('general.alignment', { type: 'u32', value: 32 })
    .set('gemma3.context_length', { type: 'u32', value: 8192 })
    .set('gemma3.embedding_length', { type: 'u32', value: embd })
    .set('gemma3.block_count', { type: 'u32', value: blocks })
    .set('gemma3.feed_forward_length', { type: 'u32', value: ff })
    .set('gemma3.attention.head_count', { type: 'u32', value: heads })
    .set('gemma3.attention.head_count_kv', { type: 'u32', value: 1 })
    .set('gemma3.attention.key_length', { type: 'u32', value: headDim })
    .set('gemma3.attention.value_length', { type: 'u32', value: headDim })
    .set('gemma3.attention.layer_norm_rms_epsilon', { type: 'f32', value: 1e-6 })
    .set('gemma3.rope.freq_base', { type: 'f32', value: 1_000_000 })
    .set('gemma3.attention.sliding_window', { type: 'u32', value: 512 })
    .set('tokenizer.ggml.model', { type: 'string', value: 'llama' })
    .set('tokenizer.ggml.tokens', { type: 'string[]', value: tokens })
    .set('tokenizer.ggml.scores', { type: 'f32[]', value: scores })
    .set('tokenizer.ggml.token_type', { type: 'i32[]', value: types })
    .set('tokenizer.ggml.bos_token_id', { type: 'u32', value: id('<bos>') })
    .set('tokenizer.ggml.eos_token_id', { type: 'u32', value: id('<eos>') })
    .set('tokenizer.ggml.eot_token_id', { type: 'u32', value: id('<end_of_turn>') })
    .set('tokenizer.ggml.unknown_token_id', { type: 'u32', value: id('<unk>') })
    .set('tokenizer.ggml.padding_token_id', { type: 'u32', value: id('<pad>') })
    .set('tokenizer.ggml.add_bos_token', { type: 'bool', value: true })
    .set('tokenizer.ggml.add_eos_token', { type: 'bool', value: false })
    .set('tokenizer.ggml.add_space_prefix', { type: 'bool', value: false })
    .set('tokenizer.chat_template', { type: 'string', value: GEMMA_CHAT_TEMPLATE });

  w.tensor('token_embd.weight', [embd, nVocab], embedding);
  w.tensor('output_norm.weight', [embd], ones(embd));
  w.tensor('output.weight', [embd, nVocab], output);
  for (let i = 0; i < blocks; i++) {
    const b = `blk.${i}`;
    w.tensor(`${b}.attn_norm.weight`, [embd], ones(embd));
    w.tensor(`${b}.attn_q.weight`, [embd, heads * headDim], noise(embd * heads * headDim, 0.1), options.weights);
    w.tensor(`${b}.attn_k.weight`, [embd, headDim], noise(embd * headDim, 0.1), options.weights);
    w.tensor(`${b}.attn_v.weight`, [embd, headDim], noise(embd * headDim, 0.1), options.weights);
    w.tensor(`${b}.attn_q_norm.weight`, [headDim], ones(headDim));
    w.tensor(`${b}.attn_k_norm.weight`, [headDim], ones(headDim));
    w.tensor(`${b}.attn_output.weight`, [heads * headDim, embd], new Float32Array(heads * headDim * embd), options.weights);
    w.tensor(`${b}.post_attention_norm.weight`, [embd], ones(embd));
    w.tensor(`${b}.ffn_norm.weight`, [embd], ones(embd));
    w.tensor(`${b}.ffn_gate.weight`, [embd, ff], noise(embd * ff, 0.1), options.weights);
    w.tensor(`${b}.ffn_up.weight`, [embd, ff], noise(embd * ff, 0.1), options.weights);
    w.tensor(`${b}.ffn_down.weight`, [ff, embd], new Float32Array(ff * embd), options.weights);
    w.tensor(`${b}.post_ffw_norm.weight`, [embd], ones(embd));
  }
  return w.toBuffer();
}

/** Writes the model to `file` unless it already exists; returns the path. */
export function ensureTinyGemma(file: string, options: TinyGemmaOptions = {}): string {
  return writeOnce(file, () => tinyGemma(options));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [out, ...rest] = process.argv.slice(2);
  if (!out) throw new Error('usage: tiny-gemma.ts <out.gguf> [--embd N] [--blocks N] [--ff N] [--loop]');
  const flag = numberFlags(rest);
  fs.writeFileSync(out, tinyGemma({ embd: flag('embd'), blocks: flag('blocks'), ff: flag('ff'), loop: rest.includes('--loop') }));
  console.log(`wrote ${out} (${fs.statSync(out).size} bytes)`);
}
