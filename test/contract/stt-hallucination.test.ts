/**
 * Segments that are silence, not text, are dropped (OpenAI's rule: no_speech_prob > 0.6 AND
 * avg_logprob < −1), with or without the VAD: the real whisper.cpp on the generated tiny model
 * whose output looks like a hallucination on silence (P(no speech) ≈ 1, every word at p = 0.2).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startApp, type TestApp } from '../helpers/app.ts';
import { wav } from '../helpers/audio.ts';
import { unsureWhisperPath } from '../helpers/models.ts';

const env = { LOCAL_WHISPER_MODEL: unsureWhisperPath(), STT_BACKEND: 'local', MAX_AUDIO_SECONDS: '60', MAX_UPLOAD_BYTES: '4000000', GEMMA_MODEL: '/absent.gguf', STT_VAD_FILTER: 'false' };

async function verbose(url: string, fields: Record<string, string> = {}) {
  const form = new FormData();
  form.set('file', new Blob([wav(35)]), 'clip.wav');
  form.set('response_format', 'verbose_json');
  form.append('timestamp_granularities[]', 'word');
  for (const [k, v] of Object.entries(fields)) form.set(k, v);
  const res = await fetch(`${url}/v1/audio/transcriptions`, { method: 'POST', body: form });
  const text = await res.text();
  assert.equal(res.status, 200, text);
  return JSON.parse(text) as { text: string; segments: { id: number; no_speech_prob: number; avg_logprob: number }[]; words: unknown[] };
}

describe('hallucinated segments are dropped', () => {
  let t: TestApp;
  let keepAll: TestApp;
  before(async () => {
    t = await startApp({ env });
    keepAll = await startApp({ env: { ...env, STT_NO_SPEECH_THRESHOLD: '1' } });
  });
  after(async () => {
    await t.close();
    await keepAll.close();
  });

  it('with the threshold disabled the model writes text in both windows, with P(no speech) ≈ 1 and avg_logprob < −1', async () => {
    const all = await verbose(keepAll.url);
    assert.equal(all.segments.length, 2, JSON.stringify(all));
    assert.notEqual(all.text, '');
    for (const s of all.segments) assert.ok(s.no_speech_prob > 0.99 && s.avg_logprob < -1.5, JSON.stringify(s));
  });

  it('by default those segments, their text and their words are dropped (VAD off)', async () => {
    const result = await verbose(t.url, { vad_filter: 'false' });
    assert.deepEqual({ text: result.text, segments: result.segments, words: result.words }, { text: '', segments: [], words: [] });
  });

  it('and never streamed', async () => {
    const form = new FormData();
    form.set('file', new Blob([wav(35)]), 'clip.wav');
    form.set('stream', 'true');
    const res = await fetch(`${t.url}/v1/audio/transcriptions`, { method: 'POST', body: form });
    const body = await res.text();
    assert.equal(res.status, 200, body);
    assert.ok(!body.includes('transcript.text.delta'), body);
    assert.match(body, /"type":"transcript\.text\.done","text":""/);
  });
});
