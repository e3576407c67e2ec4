/** The embedded voice on the real eSpeak NG (WASM) in worker threads: audio, queueing, abort, event loop left free. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { EmbeddedEspeakEngine, ESPEAK_SAMPLE_RATE } from '../../src/engines/tts/embedded-espeak.ts';
import type { PcmChunk } from '../../src/engines/tts/types.ts';

async function collect(chunks: AsyncIterable<PcmChunk>): Promise<{ samples: number; chunks: number; peak: number }> {
  let samples = 0;
  let n = 0;
  let peak = 0;
  for await (const c of chunks) {
    assert.equal(c.sampleRate, ESPEAK_SAMPLE_RATE);
    samples += c.samples.length;
    n++;
    for (const s of c.samples) peak = Math.max(peak, Math.abs(s));
  }
  return { samples, chunks: n, peak };
}

describe('embedded eSpeak NG engine', () => {
  const engine = new EmbeddedEspeakEngine({ workers: 1, defaultVoice: 'en-us' }, pino({ level: 'silent' }));
  before(() => engine.load());
  after(() => engine.close());

  it('loads in a worker and speaks streamed 22.05 kHz chunks of real audio', async () => {
    assert.equal(engine.state().status, 'ready');
    const r = await collect(engine.synthesize({ text: 'Hello world, this is the embedded voice.' }, new AbortController().signal));
    const seconds = r.samples / ESPEAK_SAMPLE_RATE;
    assert.ok(seconds > 1.5 && seconds < 5, `${seconds}s`);
    assert.ok(r.chunks > 5, `streamed in ${r.chunks} chunks`);
    assert.ok(r.peak > 3000, `peak ${r.peak}: not silence`);
  });

  it('the event loop stays free while it speaks', async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const started = performance.now();
    await collect(engine.synthesize({ text: 'A longer text keeps the worker busy for a while. '.repeat(8) }, new AbortController().signal));
    clearInterval(timer);
    const elapsed = performance.now() - started;
    assert.ok(ticks >= Math.floor(elapsed / 5) * 0.5, `${ticks} timer ticks in ${elapsed.toFixed(0)} ms`);
  });

  it('one worker serves utterances one after the other, each complete and unmixed', async () => {
    const signal = new AbortController().signal;
    const [a, b] = await Promise.all([collect(engine.synthesize({ text: 'First.' }, signal)), collect(engine.synthesize({ text: 'Second utterance is longer.' }, signal))]);
    const aloneA = await collect(engine.synthesize({ text: 'First.' }, signal));
    const aloneB = await collect(engine.synthesize({ text: 'Second utterance is longer.' }, signal));
    // eSpeak's length varies by a few samples run to run; a mixed-in chunk would be ~2,000
    assert.ok(Math.abs(a.samples - aloneA.samples) < 200, `${a.samples} vs ${aloneA.samples}`);
    assert.ok(Math.abs(b.samples - aloneB.samples) < 200, `${b.samples} vs ${aloneB.samples}`);
  });

  it('an abort stops the utterance; the next one is clean', async () => {
    const controller = new AbortController();
    let got = 0;
    await assert.rejects(async () => {
      for await (const c of engine.synthesize({ text: 'This would take a long time to say. '.repeat(40) }, controller.signal)) {
        got += c.samples.length;
        if (got > ESPEAK_SAMPLE_RATE) controller.abort(new DOMException('stop', 'AbortError'));
      }
    }, /stop/);
    // nothing after the abort: at most the chunk that crossed one second (~100 ms)
    assert.ok(got < ESPEAK_SAMPLE_RATE * 1.2, `stopped after ${got / ESPEAK_SAMPLE_RATE}s of audio`);
    const next = await collect(engine.synthesize({ text: 'First.' }, new AbortController().signal));
    const alone = await collect(engine.synthesize({ text: 'First.' }, new AbortController().signal));
    assert.ok(Math.abs(next.samples - alone.samples) < 200, `no tail of the aborted utterance leaks into the next (${next.samples} vs ${alone.samples})`);
  });

  it('speed changes the rate natively within eSpeak range; voices and variants', async () => {
    const signal = new AbortController().signal;
    const normal = await collect(engine.synthesize({ text: 'Counting one two three four five.' }, signal));
    const fast = await collect(engine.synthesize({ text: 'Counting one two three four five.', speed: 2 }, signal));
    assert.ok(fast.samples < normal.samples * 0.7);
    assert.equal(engine.speaksAt(2), true);
    assert.equal(engine.speaksAt(4), false);
    assert.equal(engine.resolveVoice('alloy'), 'en-us');
    assert.equal(engine.resolveVoice('en-us+f3'), 'en-us+f3');
    assert.throws(() => engine.resolveVoice('zz-nowhere'), /Unknown voice/);
  });
});
