/** Plays 16-bit mono PCM chunks as they arrive (Web Audio, scheduled back to back); `stop()` silences at once (barge-in). */
export class PcmPlayer {
  private context: AudioContext | undefined;
  private playhead = 0;
  private sources: AudioBufferSourceNode[] = [];
  readonly chunks: Int16Array[] = [];

  constructor(private readonly sampleRate: number) {}

  push(pcm: Int16Array): void {
    this.chunks.push(pcm);
    this.context ??= new AudioContext();
    const ctx = this.context;
    if (pcm.length === 0) return;
    const buffer = ctx.createBuffer(1, pcm.length, this.sampleRate);
    const channel = buffer.getChannelData(0);
    for (let i = 0; i < pcm.length; i++) channel[i] = pcm[i]! / 32768;
    const source = ctx.createBufferSource();
    source.buffer = buffer;
    source.connect(ctx.destination);
    this.playhead = Math.max(this.playhead, ctx.currentTime + 0.05);
    source.start(this.playhead);
    this.playhead += buffer.duration;
    this.sources.push(source);
    source.onended = () => (this.sources = this.sources.filter((s) => s !== source));
  }

  stop(): void {
    for (const s of this.sources) {
      try {
        s.stop();
      } catch {
        // already stopped
      }
    }
    this.sources = [];
    this.playhead = 0;
  }

  /** Silences and releases the audio device (an AudioContext holds one until closed). */
  close(): void {
    this.stop();
    const ctx = this.context;
    this.context = undefined;
    if (ctx && ctx.state !== 'closed') void ctx.close().catch(() => undefined);
  }

  /** Everything received, as a WAV file (for the audio element and the download link). */
  wav(): Blob {
    return wavBlob(this.chunks, this.sampleRate);
  }
}

export function wavBlob(chunks: Int16Array[], sampleRate: number): Blob {
  const samples = chunks.reduce((n, c) => n + c.length, 0);
  const header = new DataView(new ArrayBuffer(44));
  const text = (at: number, s: string) => [...s].forEach((c, i) => header.setUint8(at + i, c.charCodeAt(0)));
  text(0, 'RIFF');
  header.setUint32(4, 36 + samples * 2, true);
  text(8, 'WAVEfmt ');
  header.setUint32(16, 16, true);
  header.setUint16(20, 1, true);
  header.setUint16(22, 1, true);
  header.setUint32(24, sampleRate, true);
  header.setUint32(28, sampleRate * 2, true);
  header.setUint16(32, 2, true);
  header.setUint16(34, 16, true);
  text(36, 'data');
  header.setUint32(40, samples * 2, true);
  return new Blob([header.buffer, ...chunks.map((c) => c.slice().buffer)], { type: 'audio/wav' });
}
