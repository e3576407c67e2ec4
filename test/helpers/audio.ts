/** Test audio made at test time: WAV files of any rate, channel count and sample format. */
export function wav(seconds: number, options: { rate?: number; channels?: number; format?: 'pcm16' | 'float32' } = {}): Buffer {
  const rate = options.rate ?? 16000;
  const channels = options.channels ?? 1;
  const float = options.format === 'float32';
  const bytesPerSample = float ? 4 : 2;
  const frames = Math.round(seconds * rate);
  const dataBytes = frames * channels * bytesPerSample;
  const b = Buffer.alloc(44 + dataBytes);
  b.write('RIFF', 0);
  b.writeUInt32LE(36 + dataBytes, 4);
  b.write('WAVE', 8);
  b.write('fmt ', 12);
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(float ? 3 : 1, 20);
  b.writeUInt16LE(channels, 22);
  b.writeUInt32LE(rate, 24);
  b.writeUInt32LE(rate * channels * bytesPerSample, 28);
  b.writeUInt16LE(channels * bytesPerSample, 32);
  b.writeUInt16LE(bytesPerSample * 8, 34);
  b.write('data', 36);
  b.writeUInt32LE(dataBytes, 40);
  for (let i = 0; i < frames; i++) {
    const v = Math.sin((2 * Math.PI * 220 * i) / rate) * 0.3;
    for (let c = 0; c < channels; c++) {
      const at = 44 + (i * channels + c) * bytesPerSample;
      if (float) b.writeFloatLE(v, at);
      else b.writeInt16LE(Math.round(v * 32767), at);
    }
  }
  return b;
}
