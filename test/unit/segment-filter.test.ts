/** OpenAI's silence rule on segments (src/services/segment-filter.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Transcript, TranscriptSegment } from '../../src/engines/stt/types.ts';
import { isSilence, SegmentFilter } from '../../src/services/segment-filter.ts';

const T = { noSpeech: 0.6, logprob: -1 };
const seg = (id: number, start: number, text: string, noSpeechProb: number | null, avgLogprob: number): TranscriptSegment => ({ id, start, end: start + 1, text, noSpeechProb, avgLogprob });

describe('segment filter', () => {
  it('needs both a high no_speech_prob and a low avg_logprob', () => {
    assert.equal(isSilence(seg(0, 0, 'x', 0.9, -1.5), T), true);
    assert.equal(isSilence(seg(0, 0, 'x', 0.9, -0.5), T), false, 'confident text stays');
    assert.equal(isSilence(seg(0, 0, 'x', 0.5, -3), T), false, 'a window the model took for speech stays');
    assert.equal(isSilence(seg(0, 0, 'x', 0.6, -3), T), false, 'strictly above the threshold');
    assert.equal(isSilence(seg(0, 0, 'x', null, -3), T), false, 'no probability reported: kept');
  });

  it('drops segments with their text and words, and renumbers the rest, streamed or whole', () => {
    const t: Transcript = {
      text: 'a b c',
      language: 'en',
      duration: 3,
      segments: [seg(0, 0, ' a', 0.1, -0.2), seg(1, 1, ' b', 0.95, -2), seg(2, 2, ' c', 0.1, -0.2)],
      words: [{ word: 'a', start: 0.1, end: 0.5 }, { word: 'b', start: 1.2, end: 1.6 }, { word: 'c', start: 2.1, end: 2.9 }],
    };
    const out = SegmentFilter.apply(t, T);
    assert.equal(out.text, 'a c');
    assert.deepEqual(out.segments.map((s) => [s.id, s.text]), [[0, ' a'], [1, ' c']]);
    assert.deepEqual(out.words?.map((w) => w.word), ['a', 'c']);
    const stream = new SegmentFilter(T);
    assert.deepEqual(t.segments.map((s) => stream.pass(s)?.id ?? null), [0, null, 1]);
    assert.equal(SegmentFilter.apply({ ...t, segments: [t.segments[0]!] }, T).text, t.text, 'nothing dropped: unchanged');
  });
});
