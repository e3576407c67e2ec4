/** 16-bit PCM WAV from Float32 samples (wavefile writes the header). */
import wavefile from 'wavefile';

export function encodeWavPcm16(samples: Float32Array, sampleRate: number): Buffer {
  const pcm = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) pcm[i] = Math.max(-32768, Math.min(32767, Math.round(samples[i]! * 32767)));
  const file = new wavefile.WaveFile();
  file.fromScratch(1, sampleRate, '16', pcm);
  return Buffer.from(file.toBuffer());
}
