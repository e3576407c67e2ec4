/** Tiny models generated at test time into the git-ignored .cache/models. */
import path from 'node:path';
import { ensureTinyGemma } from '../../scripts/models/tiny-gemma.ts';
import { ensureTinyWhisper } from '../../scripts/models/tiny-whisper.ts';

export const MODELS_DIR = path.resolve('.cache/models');

/** The deterministic tiny Gemma 3 (answers TINY_GEMMA_REPLY, then ends its turn). */
export function tinyGemmaPath(): string {
  return ensureTinyGemma(path.join(MODELS_DIR, 'tiny-gemma3.gguf'));
}

/** The same model that never ends its turn (repeats the reply until max_tokens). */
export function loopingGemmaPath(): string {
  return ensureTinyGemma(path.join(MODELS_DIR, 'tiny-gemma3-loop.gguf'), { loop: true });
}

/** The looping model with its reply only 1.5 logits ahead: sampling and penalties visibly change its text. */
export function gentleGemmaPath(): string {
  return ensureTinyGemma(path.join(MODELS_DIR, 'tiny-gemma3-loop-gap1.5.gguf'), { loop: true, logitGap: 1.5 });
}

/** The deterministic tiny whisper.cpp model (transcribes TINY_WHISPER_TEXT, 0.00–1.00 s). */
export function tinyWhisperPath(): string {
  return ensureTinyWhisper(path.join(MODELS_DIR, 'tiny-whisper.en.bin'));
}

/** The deterministic tiny whisper model whose no-speech probability at SOT is 0.5 (same transcript). */
export function halfNoSpeechWhisperPath(): string {
  return ensureTinyWhisper(path.join(MODELS_DIR, 'tiny-whisper-nosp-half.en.bin'), { noSpeechHalf: true });
}

/** The tiny whisper model whose output looks like a hallucination on silence (P(no speech) ≈ 1, avg_logprob ≈ −1.6; its text is garbage). */
export function unsureWhisperPath(): string {
  return ensureTinyWhisper(path.join(MODELS_DIR, 'tiny-whisper-unsure.en.bin'), { unsure: true });
}
