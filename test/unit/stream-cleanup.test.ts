/**
 * Streams that must clean up after themselves: a long multi-sentence synthesis leaves no `abort`
 * listener behind on the request's signal (one per sentence used to pile up, with Node's
 * MaxListenersExceeded warning past ten), and an ffmpeg that exits while its stdin is full ends
 * the pipe instead of leaving the request hanging.
 */
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, it } from 'node:test';
import { ffmpegPipe, probeFfmpeg } from '../../src/audio/ffmpeg.ts';
import { loadConfig } from '../../src/config.ts';
import { EngineRegistry } from '../../src/engines/registry.ts';
import type { PcmChunk, SynthesisRequest, TtsEngine } from '../../src/engines/tts/types.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { SynthesisService } from '../../src/services/synthesis.ts';

class CountingTts implements TtsEngine {
  readonly id = 'counting-tts';
  readonly capability = 'tts' as const;
  said = 0;
  async load() {}
  state() {
    return { status: 'ready' as const };
  }
  async close() {}
  speaksAt() {
    return true;
  }
  async voices() {
    return [];
  }
  async *synthesize(request: SynthesisRequest): AsyncIterable<PcmChunk> {
    this.said++;
    yield { samples: new Int16Array(160).fill(request.text.length), sampleRate: 16000 };
  }
}

describe('SynthesisService.speakSentences', () => {
  it('leaves no abort listener behind after a reply of many sentences, and Node prints no MaxListenersExceeded warning', async () => {
    const config = loadConfig({ DEFAULT_AUDIO_SAMPLE_RATE: '16000' });
    const metrics = new Metrics();
    const tts = new CountingTts();
    const engines = new EngineRegistry({ llm: [], stt: [], tts: [tts] }, metrics);
    const synthesis = new SynthesisService(config, engines, metrics, probeFfmpeg('/nonexistent/ffmpeg'));
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const controller = new AbortController();
      const before = getEventListeners(controller.signal, 'abort').length;
      async function* sentences() {
        for (let i = 0; i < 25; i++) yield `Sentence number ${i}.`;
      }
      const spoken = synthesis.speakSentences(sentences(), { format: 'pcm' }, controller.signal);
      let bytes = 0;
      for await (const part of spoken.bytes) bytes += part.length;
      assert.equal(tts.said, 25);
      assert.equal(spoken.spoken().length, 25);
      assert.equal(bytes, 25 * 160 * 2);
      assert.equal(getEventListeners(controller.signal, 'abort').length, before, 'every sentence removed its abort listener');
      await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
      assert.deepEqual(
        warnings.filter((w) => w.name === 'MaxListenersExceededWarning').map((w) => w.message),
        [],
      );
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('ffmpegPipe', () => {
  const ffmpeg = probeFfmpeg('ffmpeg');

  it('ends when ffmpeg exits while its stdin is full, and stops reading the input', { skip: !ffmpeg.available && 'no ffmpeg' }, async () => {
    let produced = 0;
    let inputClosed = false;
    // far more than ffmpeg reads before it stops: 1 MiB chunks, up to 256 MiB
    async function* input(): AsyncGenerator<Buffer> {
      try {
        for (let i = 0; i < 256; i++) {
          produced++;
          yield Buffer.alloc(1 << 20);
        }
      } finally {
        inputClosed = true;
      }
    }
    // `-t 0.1` makes ffmpeg write 0.1 s of output and exit without reading the rest of stdin
    const args = ['-f', 's16le', '-ar', '16000', '-ac', '1', '-i', 'pipe:0', '-t', '0.1', '-f', 's16le', 'pipe:1'];
    const run = (async () => {
      let out = 0;
      for await (const chunk of ffmpegPipe(ffmpeg, args, input(), new AbortController().signal)) out += chunk.length;
      return out;
    })();
    // generous: the pipe ends within a second or two; a hang is what this guards against
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<'hung'>((resolve) => {
      timer = setTimeout(() => resolve('hung'), 60_000);
    });
    try {
      const out = await Promise.race([run, hung]);
      assert.notEqual(out, 'hung', 'ffmpegPipe never ended after ffmpeg exited');
      assert.equal(out, 0.1 * 16000 * 2);
      assert.ok(inputClosed, 'the input was closed when ffmpeg stopped reading');
      assert.ok(produced < 256, `the input was not read to its end (${produced} chunks)`);
    } finally {
      clearTimeout(timer);
    }
  });
});
