/**
 * Voice models in the models file (`tts:` entries, backend espeak | openaudio) on the real app: the
 * request's `model` on /v1/audio/speech and /v1/text-to-speech picks the engine (told apart by
 * X-TTS-Engine / `engine`, and by what reached the fish-speech stand-in); tts-1, tts-1-hd and
 * gpt-4o-mini-tts pick the default (the first); an unknown name is 404 `model_not_found`; GET
 * /v1/models lists them; bad entries stop the start-up with their place in the file.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readModelsFile } from '../../src/models/models-file.ts';
import { startFakeFishSpeech, type FakeFishSpeech } from '../fakes/fish-speech.ts';
import WebSocket from 'ws';
import { startApp, type TestApp } from '../helpers/app.ts';
import { eventLog } from '../helpers/ws.ts';
import type { ErrorEnvelope as Envelope } from '../../src/errors.ts';

describe('voice models in the models file, routed by `model`', () => {
  let dir: string;
  let fake: FakeFishSpeech;
  let t: TestApp;

  before(async () => {
    fake = await startFakeFishSpeech();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tts-models-'));
    const file = path.join(dir, 'models.yaml');
    fs.writeFileSync(
      file,
      ['tts:', '  - id: espeak-en', '    backend: espeak', '    voice: en-us', '    aliases: [narrator]', '  - id: fish', '    backend: openaudio', `    base_url: ${fake.url}`, '    voice: studio-voice'].join('\n'),
    );
    // no llm/stt sections: those come from the variables (the LLM absent here, Whisper off)
    t = await startApp({ env: { MODELS_FILE: file, GEMMA_MODEL: '/absent.gguf', ENABLE_LOCAL_WHISPER: 'false', TTS_BACKEND: 'embedded', OPENAUDIO_MAX_RETRIES: '0' } });
    for (let i = 0; i < 200; i++) {
      const ready = (await (await fetch(`${t.url}/health/ready`)).json()) as { capabilities: { tts: { engines: { status: string }[] } } };
      if (ready.capabilities.tts.engines.every((e) => e.status === 'ready')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
  });
  after(async () => {
    // t is unset when the start-up refused the file: the stand-in must close anyway
    await (t as TestApp | undefined)?.close();
    await fake.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const speech = (model?: string) => fetch(`${t.url}/v1/audio/speech`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input: 'Hi there.', voice: 'alloy', response_format: 'wav', ...(model ? { model } : {}) }) });

  it('lists the voice models with capability tts', async () => {
    const { data } = (await (await fetch(`${t.url}/v1/models`)).json()) as { data: { id: string; capability: string; aliases: string[]; default: boolean }[] };
    assert.deepEqual(
      data.filter((m) => m.capability === 'tts').map((m) => [m.id, m.default, m.aliases]),
      [
        ['espeak-en', true, ['narrator']],
        ['fish', false, []],
      ],
    );
  });

  it('/v1/audio/speech routes by model; the SDK names and no model pick the default', async () => {
    const fish = await speech('fish');
    assert.equal(fish.status, 200, await fish.clone().text());
    assert.equal(fish.headers.get('x-tts-engine'), 'openaudio');
    assert.ok((await fish.arrayBuffer()).byteLength > 44);
    assert.equal(fake.requests.at(-1)?.body.text, 'Hi there.', 'fish-speech spoke it');
    const before = fake.requests.length;
    for (const model of ['espeak-en', 'narrator', 'tts-1', 'tts-1-hd', 'gpt-4o-mini-tts', undefined]) {
      const res = await speech(model);
      assert.equal(res.status, 200, `${model}: ${await res.clone().text()}`);
      assert.equal(res.headers.get('x-tts-engine'), 'espeak', String(model));
      assert.ok((await res.arrayBuffer()).byteLength > 44);
    }
    assert.equal(fake.requests.length, before, 'fish-speech was not asked for the default model');
  });

  it("/v1/text-to-speech routes by model; the entry's voice is its default", async () => {
    const say = async (model?: string) => {
      const res = await fetch(`${t.url}/v1/text-to-speech`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: 'Hello.', format: 'wav', ...(model ? { model } : {}) }) });
      assert.equal(res.status, 200, `${model}: ${await res.clone().text()}`);
      return ((await res.json()) as { engine: string }).engine;
    };
    assert.equal(await say('fish'), 'openaudio');
    assert.equal(fake.requests.at(-1)?.body.reference_id, 'studio-voice', "the entry's voice is fish-speech's reference");
    assert.equal(await say('narrator'), 'espeak');
    assert.equal(await say(), 'espeak');
  });

  it('an unknown model is 404 model_not_found listing the voice models, on both routes', async () => {
    const responses = [await speech('gpt-9'), await fetch(`${t.url}/v1/text-to-speech`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: 'Hello.', model: 'gpt-9' }) })];
    for (const res of responses) {
      assert.equal(res.status, 404);
      const { error } = (await res.json()) as Envelope;
      assert.deepEqual([error.code, error.param], ['model_not_found', 'model']);
      assert.match(error.message, /espeak-en, fish/);
    }
    // a voice engine cannot be unloaded (it is not a runner process)
    const unload = await fetch(`${t.url}/v1/models/fish/unload`, { method: 'POST' });
    assert.equal(unload.status, 409);
    assert.equal(((await unload.json()) as Envelope).error.code, 'model_not_unloadable');
  });

  it('/ws/tts routes ?model= and model in config; an unknown one is an error event (query: then close)', async () => {
    const utterance = async (query: string, config?: object) => {
      const ws = new WebSocket(`${t.wsUrl}/ws/tts${query}`);
      const log = eventLog(ws);
      await log.waitFor((e) => e.type === 'ready');
      if (config) ws.send(JSON.stringify({ type: 'config', ...config }));
      ws.send(JSON.stringify({ type: 'text', text: 'Hello there.' }));
      ws.send('{"type":"flush"}');
      const end = await log.waitFor((e) => e.type === 'end' || e.type === 'error', 30_000);
      ws.close();
      return { end, log };
    };
    assert.equal((await utterance('?model=fish')).end.engine, 'openaudio');
    assert.equal((await utterance('', { model: 'fish' })).end.engine, 'openaudio');
    assert.equal((await utterance('?model=tts-1')).end.engine, 'espeak');
    assert.equal((await utterance('')).end.engine, 'espeak');
    const kept = await utterance('?model=fish', { model: 'gpt-9' });
    assert.equal((kept.log.events.find((e) => e.type === 'error')?.error as { code: string } | undefined)?.code, 'model_not_found');
    await kept.log.waitFor((e) => e.type === 'end', 30_000);
    assert.equal(kept.log.events.find((e) => e.type === 'end')?.engine, 'openaudio', 'the previous model stays');

    const ws = new WebSocket(`${t.wsUrl}/ws/tts?model=gpt-9`);
    const messages: { type: string; error?: { code: string } }[] = [];
    ws.on('message', (data) => messages.push(JSON.parse(String(data)) as { type: string }));
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the socket was not closed')), 15_000);
      ws.once('close', () => resolve(clearTimeout(timer)));
      ws.once('error', reject);
    }).finally(() => ws.terminate());
    assert.deepEqual(messages.map((m) => [m.type, m.error?.code]), [['error', 'model_not_found']]);
  });

  it('reports bad voice entries with their place in the file', () => {
    const file = path.join(dir, 'bad.yaml');
    fs.writeFileSync(file, ['tts:', '  - id: a', '    backend: openaudio', '  - id: a', '    backend: piper', '  - id: b', '    backend: espeak', '    workers: 0'].join('\n'));
    const { models, problems } = readModelsFile(file);
    assert.equal(models, undefined);
    const all = problems.join('\n');
    for (const expected of [/tts\[0\]\.base_url: backend openaudio needs base_url/, /tts\[1\]\.backend/, /tts\[1\]\.id: "a" is already used by tts\[0\]\.id/, /tts\[2\]\.workers/]) assert.match(all, expected);
  });
});
