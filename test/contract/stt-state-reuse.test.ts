/**
 * whisper_state reuse (scripts/whisper-patches.mjs, patch 3) on a real service process with its
 * Whisper runner: the binding keeps the model's decoding states and reuses them across windows and
 * requests instead of creating one per window, and a reused state decodes exactly like a fresh one.
 * The model is the generated `unsure` tiny Whisper: its every window fails the log-probability
 * threshold, so whisper.cpp falls back to sampling at temperatures > 0, where a state carried over
 * from the previous call (its sampler's random generator) would change the text.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { wav } from '../helpers/audio.ts';
import { unsureWhisperPath } from '../helpers/models.ts';
import { freePort, spawnService, waitForHealth, type ServiceProcess } from '../helpers/process.ts';

const env = {
  LOCAL_WHISPER_MODEL: unsureWhisperPath(),
  STT_BACKEND: 'local',
  STT_RUNNER: 'process',
  STT_PARALLEL: '2',
  WHISPER_THREADS: '1',
  // keep the segments the hallucination filter would drop: their text is what a reused state could change
  STT_NO_SPEECH_THRESHOLD: '1',
  STT_VAD_FILTER: 'false',
  MAX_AUDIO_SECONDS: '120',
  MAX_UPLOAD_BYTES: '8000000',
  GEMMA_MODEL: '/absent.gguf',
  TTS_BACKEND: 'embedded',
  // the runner's native stderr (whisper.cpp's "whisper_init_state: ..." lines) is logged at info
  LOG_LEVEL: 'info',
};

/** Lines whisper.cpp prints once per whisper_init_state (one per state created). */
const statesCreated = (output: string) => output.match(/whisper_init_state: kv self size/g)?.length ?? 0;

describe('Whisper decoding states are reused, with identical results', () => {
  let service: ServiceProcess;
  before(async () => {
    service = spawnService(env, await freePort());
    await waitForHealth(service.url);
    // the LLM is absent on purpose: wait for the Whisper runner only (generous: a busy 2-core machine)
    const deadline = Date.now() + 180_000;
    for (;;) {
      const body = (await (await fetch(`${service.url}/health/ready`)).json()) as { capabilities: { stt: { status: string } } };
      if (body.capabilities.stt.status === 'ready') break;
      assert.ok(Date.now() < deadline, `Whisper did not load: ${service.output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  });
  after(async () => {
    service.child.kill('SIGTERM');
    await service.exited;
  });

  // 70 s: three windows per request
  const audio = wav(70);
  async function segments(): Promise<unknown[]> {
    const form = new FormData();
    form.set('file', new Blob([audio]), 'clip.wav');
    form.set('response_format', 'verbose_json');
    form.append('timestamp_granularities[]', 'word');
    form.append('timestamp_granularities[]', 'segment');
    const res = await fetch(`${service.url}/v1/audio/transcriptions`, { method: 'POST', body: form });
    const text = await res.text();
    assert.equal(res.status, 200, text);
    const body = JSON.parse(text) as { segments: unknown[]; words: unknown[] };
    return [body.segments, body.words];
  }

  let first: unknown[];
  it('one request of three windows creates one state; the same audio again reuses it and gives the same segments, words, timestamps and no_speech_prob', async () => {
    first = await segments();
    assert.ok((first[0] as unknown[]).length >= 3, JSON.stringify(first));
    assert.equal(statesCreated(service.output()), 1, 'one whisper_state for three consecutive windows');
    const second = await segments();
    assert.deepEqual(second, first);
    assert.equal(statesCreated(service.output()), 1, 'the next request reuses it');
  });

  it('two requests at once each decode on their own state (at most two exist) and both give the same result', async () => {
    const [a, b] = await Promise.all([segments(), segments()]);
    assert.deepEqual(a, first);
    assert.deepEqual(b, first);
    const created = statesCreated(service.output());
    assert.ok(created >= 1 && created <= 2, `states created: ${created}`);
    // and afterwards both idle states serve again, none is created
    assert.deepEqual(await segments(), first);
    assert.equal(statesCreated(service.output()), created);
  });
});
