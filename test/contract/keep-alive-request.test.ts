/**
 * The request's `keep_alive` (Ollama's semantics) on a real service process whose models stay
 * loaded by default (MODEL_KEEP_ALIVE=-1): `keep_alive: 0` unloads the model right after the answer
 * (its runner process exits), the next request loads it again, and the override holds for that
 * model from then on. Invalid values are a 400 naming `keep_alive` on every route that takes it.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { TINY_WHISPER_TEXT } from '../../scripts/models/tiny-whisper.ts';
import { wav } from '../helpers/audio.ts';
import { tinyGemmaPath, tinyWhisperPath } from '../helpers/models.ts';
import { spawnReadyService, stopService, type ServiceProcess } from '../helpers/process.ts';
import { childPids, until } from '../helpers/runners.ts';
import type { ErrorEnvelope as Envelope } from '../../src/errors.ts';

interface ListedModel {
  id: string;
  state: string;
}
const json = (url: string, body: unknown) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe('per-request keep_alive (Ollama semantics)', () => {
  let dir: string;
  let service: ServiceProcess;
  const state = async (id: string) => ((await (await fetch(`${service.url}/v1/models`)).json()) as { data: ListedModel[] }).data.find((m) => m.id === id)!.state;
  /** Whether a runner process of this kind (`llm-runner`, `stt-runner`: its entry file) is a child of the service. */
  const runnerAlive = (kind: 'llm-runner' | 'stt-runner') => childPids(service.child.pid!, kind).length > 0;
  const sttForm = (keepAlive?: string) => {
    const form = new FormData();
    form.append('file', new Blob([wav(2)], { type: 'audio/wav' }), 'a.wav');
    form.append('model', 'whisper');
    if (keepAlive !== undefined) form.append('keep_alive', keepAlive);
    return form;
  };

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keep-alive-'));
    const file = path.join(dir, 'models.json');
    fs.writeFileSync(file, JSON.stringify({ llm: [{ id: 'tiny', model: tinyGemmaPath(), context: 512, parallel: 1, threads: 1 }], stt: [{ id: 'whisper', model: tinyWhisperPath(), threads: 1 }] }));
    service = await spawnReadyService({ MODELS_FILE: file, MODEL_KEEP_ALIVE: '-1', LLM_DEVICE: 'cpu', STT_BACKEND: 'local', TTS_BACKEND: 'embedded', WHISPER_THREADS: '1' });
  });
  after(async () => {
    await stopService(service);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('keep_alive 0 on a chat completion unloads the model after the answer (its runner exits); the next request loads it again', async () => {
    assert.equal(await state('tiny'), 'loaded');
    const chat = (extra: object) => json(`${service.url}/v1/chat/completions`, { model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4, ...extra });
    // the default (MODEL_KEEP_ALIVE=-1) keeps it: a plain request leaves it loaded
    assert.equal((await chat({})).status, 200);
    assert.equal(await state('tiny'), 'loaded');
    const res = await chat({ keep_alive: 0 });
    assert.equal(res.status, 200, await res.clone().text());
    await until('tiny to unload', async () => (await state('tiny')) === 'unloaded');
    await until("tiny's runner to exit", () => !runnerAlive('llm-runner'));
    // loaded again by the next request (the OpenAI SDK sends the field through extra_body)
    const client = new OpenAI({ baseURL: `${service.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const again = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4, keep_alive: '-1' } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    assert.ok(again.choices[0]);
    assert.equal(await state('tiny'), 'loaded');
    assert.ok(runnerAlive('llm-runner'), "tiny's runner is back");
  });

  it('the override holds for the model from then on, on /v1/responses and /v1/generate too', async () => {
    const responses = await json(`${service.url}/v1/responses`, { model: 'tiny', input: 'Hi', max_output_tokens: 4, keep_alive: '0s' });
    assert.equal(responses.status, 200, await responses.clone().text());
    await until('tiny to unload after /v1/responses', async () => (await state('tiny')) === 'unloaded');
    // no keep_alive now: the last one (0) still holds for this model, as in Ollama
    const generate = await json(`${service.url}/v1/generate`, { model: 'tiny', prompt: 'Hi', max_tokens: 4 });
    assert.equal(generate.status, 200, await generate.clone().text());
    await until('tiny to unload after /v1/generate', async () => (await state('tiny')) === 'unloaded');
    const keep = await json(`${service.url}/v1/completions`, { model: 'tiny', prompt: 'Hi', max_tokens: 4, keep_alive: '5m' });
    assert.equal(keep.status, 200, await keep.clone().text());
    assert.equal(await state('tiny'), 'loaded');
  });

  it('keep_alive "0" on a transcription unloads the Whisper model (its runner exits); the next one loads it again', async () => {
    assert.equal(await state('whisper'), 'loaded');
    assert.ok(runnerAlive('stt-runner'));
    const res = await fetch(`${service.url}/v1/audio/transcriptions`, { method: 'POST', body: sttForm('0') });
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(((await res.json()) as { text: string }).text.trim(), TINY_WHISPER_TEXT);
    await until('whisper to unload', async () => (await state('whisper')) === 'unloaded');
    await until("whisper's runner to exit", () => !runnerAlive('stt-runner'));
    const again = await fetch(`${service.url}/v1/speech-to-text`, { method: 'POST', body: sttForm('-1') });
    assert.equal(again.status, 200, await again.clone().text());
    assert.equal(await state('whisper'), 'loaded');
  });

  it('a negative keep_alive, or one longer than a timer holds (~24.8 days), keeps the model loaded: never an immediate unload', async () => {
    const chat = (keepAlive: unknown) => json(`${service.url}/v1/chat/completions`, { model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2, keep_alive: keepAlive });
    assert.equal((await chat(-1)).status, 200);
    const [runner] = childPids(service.child.pid!, 'llm-runner');
    assert.ok(runner);
    for (const keepAlive of ['1000h', '600h', 2147484, 1e308, '99999999999999999999999h', -5, '-1m', '-2']) {
      const res = await chat(keepAlive);
      assert.equal(res.status, 200, `${JSON.stringify(keepAlive)}: ${await res.clone().text()}`);
      // an overflowing timer fired at once and unloaded the model: the next request would load a new runner
      assert.equal((await chat(undefined)).status, 200);
      assert.deepEqual(childPids(service.child.pid!, 'llm-runner'), [runner], `${JSON.stringify(keepAlive)} kept the same runner`);
      assert.equal(await state('tiny'), 'loaded');
    }
  });

  it('a request refused with a 4xx (context overflow; English-only model asked to translate) does not change its model\'s keep_alive', async () => {
    const chat = (extra: object) => json(`${service.url}/v1/chat/completions`, { model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2, ...extra });
    assert.equal((await chat({ keep_alive: -1 })).status, 200);
    const [llm] = childPids(service.child.pid!, 'llm-runner');
    const overflow = await chat({ keep_alive: 0, messages: [{ role: 'user', content: 'word '.repeat(2000) }] });
    assert.equal(overflow.status, 400, await overflow.clone().text());
    for (let i = 0; i < 2; i++) assert.equal((await chat({})).status, 200);
    assert.deepEqual(childPids(service.child.pid!, 'llm-runner'), [llm], 'keep_alive 0 of the refused request did not apply');

    const plain = await fetch(`${service.url}/v1/audio/transcriptions`, { method: 'POST', body: sttForm('-1') });
    assert.equal(plain.status, 200, await plain.clone().text());
    const [stt] = childPids(service.child.pid!, 'stt-runner');
    const translate = await fetch(`${service.url}/v1/audio/translations`, { method: 'POST', body: sttForm('0') });
    assert.equal(translate.status, 400, await translate.clone().text());
    assert.equal(((await translate.json()) as Envelope).error.code, 'unsupported_task');
    for (let i = 0; i < 2; i++) assert.equal((await fetch(`${service.url}/v1/audio/transcriptions`, { method: 'POST', body: sttForm() })).status, 200);
    assert.deepEqual(childPids(service.child.pid!, 'stt-runner'), [stt], 'keep_alive 0 of the refused translation did not apply');
    assert.equal(await state('whisper'), 'loaded');
  });

  it('refuses an invalid keep_alive with 400 naming it, on every route that takes it', async () => {
    const bad = ['5 minutes', '1d', 'forever', true, '-', '--1'];
    const bodies = {
      '/v1/chat/completions': { messages: [{ role: 'user', content: 'Hi' }] },
      '/v1/completions': { prompt: 'Hi' },
      '/v1/responses': { input: 'Hi' },
      '/v1/generate': { prompt: 'Hi' },
      '/v1/speech-to-text': { audio_base64: wav(1).toString('base64') },
    };
    for (const [route, body] of Object.entries(bodies)) {
      for (const keepAlive of bad) {
        const res = await json(`${service.url}${route}`, { ...body, keep_alive: keepAlive });
        assert.equal(res.status, 400, `${route} ${JSON.stringify(keepAlive)}`);
        const envelope = (await res.json()) as Envelope;
        assert.equal(envelope.error.param, 'keep_alive', `${route}: ${envelope.error.message}`);
      }
    }
    for (const route of ['/v1/audio/transcriptions', '/v1/audio/translations', '/v1/speech-to-text']) {
      const res = await fetch(`${service.url}${route}`, { method: 'POST', body: sttForm('5 minutes') });
      assert.equal(res.status, 400, route);
      assert.equal(((await res.json()) as Envelope).error.param, 'keep_alive', route);
    }
  });

  it('POST /v1/models/{id}/load takes keep_alive in its body (as Ollama\'s load); an empty JSON body is no body on load and unload', async () => {
    const post = (route: string, body?: string) => fetch(`${service.url}/v1/models/${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, ...(body === undefined ? {} : { body }) });
    for (const route of ['tiny/unload', 'tiny/load']) {
      const res = await post(route);
      assert.equal(res.status, 200, `${route}: ${await res.clone().text()}`);
    }
    const hour = await post('tiny/load', JSON.stringify({ keep_alive: '1h' }));
    assert.equal(hour.status, 200, await hour.clone().text());
    assert.equal(((await hour.json()) as ListedModel).state, 'loaded');
    const bad = await post('tiny/load', JSON.stringify({ keep_alive: 'soon' }));
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as Envelope).error.param, 'keep_alive');
    assert.equal((await post('tiny/load', JSON.stringify({ prompt: 'x' }))).status, 400, 'unknown fields are refused');
    // keep_alive 0 from the load body: idle at once, so unloaded right after the load
    assert.equal((await post('tiny/load', JSON.stringify({ keep_alive: 0 }))).status, 200);
    await until('tiny to unload after a load with keep_alive 0', async () => (await state('tiny')) === 'unloaded', 30_000);
    await until("tiny's runner to exit", () => !runnerAlive('llm-runner'), 30_000);
  });
});
