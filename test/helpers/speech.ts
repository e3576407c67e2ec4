/**
 * Speech fixtures made at test time with the embedded eSpeak NG voice (real synthesized speech,
 * no files): phrases and silences → 16 kHz mono PCM16, as a microphone would stream it.
 */
import pino from 'pino';
import { resample } from '../../src/audio/resample.ts';
import { float32ToInt16, int16ToFloat32 } from '../../src/audio/pcm.ts';
import { EmbeddedEspeakEngine, ESPEAK_SAMPLE_RATE } from '../../src/engines/tts/embedded-espeak.ts';

export type Part = string | { silence: number };

let engine: EmbeddedEspeakEngine | undefined;

export async function speech(parts: Part[]): Promise<Int16Array> {
  if (!engine) {
    engine = new EmbeddedEspeakEngine({ workers: 1, defaultVoice: 'en-us' }, pino({ level: 'silent' }));
    await engine.load();
  }
  const pieces: Int16Array[] = [];
  for (const part of parts) {
    if (typeof part !== 'string') {
      pieces.push(new Int16Array(Math.round(part.silence * 16000)));
      continue;
    }
    const chunks: Int16Array[] = [];
    for await (const c of engine.synthesize({ text: part }, new AbortController().signal)) chunks.push(c.samples);
    const all = new Int16Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of chunks) {
      all.set(c, at);
      at += c.length;
    }
    pieces.push(float32ToInt16(await resample(int16ToFloat32(all), ESPEAK_SAMPLE_RATE, 16000)));
  }
  const out = new Int16Array(pieces.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of pieces) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export async function closeSpeech(): Promise<void> {
  await engine?.close();
  engine = undefined;
}
