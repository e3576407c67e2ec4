/**
 * Several models per capability (MODELS_FILE), on a real service process: two tiny LLMs whose
 * answers differ (one ends its turn, one loops to max_tokens) and two tiny Whisper models whose
 * no-speech probabilities differ, routed by the request's `model` on every surface that takes one;
 * aliases, the OpenAI SDKs' default names, 404 `model_not_found` for anything else, GET /v1/models
 * with states, and a model loaded on its first request.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import OpenAI, { toFile } from 'openai';
import WebSocket from 'ws';
import { TINY_GEMMA_REPLY } from '../../scripts/models/tiny-gemma.ts';
import { TINY_WHISPER_TEXT } from '../../scripts/models/tiny-whisper.ts';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { wav } from '../helpers/audio.ts';
import { startModelsService, type ModelsService } from '../helpers/models-file.ts';
import { loopingGemmaPath, tinyGemmaPath } from '../helpers/models.ts';
import { spawnReadyService, stopService, type ServiceProcess } from '../helpers/process.ts';
import { childPids, until } from '../helpers/runners.ts';
import type { ErrorEnvelope as Envelope } from '../../src/errors.ts';

interface ListedModel {
  id: string;
  capability: string;
  state: string;
  aliases: string[];
  default: boolean;
  memory_bytes?: number;
}
const json = (url: string, body: unknown) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe('several models per capability, routed by `model` (MODELS_FILE)', () => {
  let running: ModelsService;
  let service: ServiceProcess;
  let client: OpenAI;
  const models = async () => ((await (await fetch(`${service.url}/v1/models`)).json()) as { data: ListedModel[] }).data;
  const sttForm = (model?: string) => {
    const form = new FormData();
    form.append('file', new Blob([wav(2)], { type: 'audio/wav' }), 'a.wav');
    if (model) form.append('model', model);
    return form;
  };

  before(async () => {
    running = await startModelsService({ LLM_MODEL_ALIASES: 'gpt-4o-mini' });
    service = running.service;
    client = new OpenAI({ baseURL: `${service.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  after(() => running.close());

  it('lists every configured model with its capability and state; one not preloaded is unloaded until asked for', async () => {
    const listed = await models();
    assert.deepEqual(
      listed.map((m) => [m.id, m.capability, m.state, m.default]),
      [
        ['tiny', 'llm', 'loaded', true],
        ['looper', 'llm', 'unloaded', false],
        ['whisper-a', 'stt', 'loaded', true],
        ['whisper-b', 'stt', 'loaded', false],
      ],
    );
    assert.deepEqual(listed[0]!.aliases, ['gemma-small', 'gpt-4o-mini']);
    assert.ok((listed[0]!.memory_bytes ?? 0) > 0, 'the LLM runner process reports its memory');
    assert.equal((await client.models.retrieve('gemma-small')).id, 'tiny');
    const ready = (await (await fetch(`${service.url}/health/ready`)).json()) as { capabilities: Record<string, { engines: { model?: string; status: string }[] }> };
    assert.deepEqual(ready.capabilities.llm!.engines.map((e) => [e.model, e.status]), [['tiny', 'ready'], ['looper', 'unloaded']], 'a model loaded on demand does not hold readiness back');
  });

  it('routes chat completions by model: each answer comes from the model it names', async () => {
    const tiny = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 20 });
    assert.equal(tiny.model, 'tiny');
    assert.equal(tiny.choices[0]?.message.content, TINY_GEMMA_REPLY);
    assert.equal(tiny.choices[0]?.finish_reason, 'stop');
    const looper = await client.chat.completions.create({ model: 'looper', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 20 });
    assert.equal(looper.model, 'looper');
    assert.equal(looper.choices[0]?.finish_reason, 'length', 'the looping model never ends its turn');
    assert.ok((looper.choices[0]?.message.content ?? '').startsWith(TINY_GEMMA_REPLY));
    assert.equal((await models()).find((m) => m.id === 'looper')?.state, 'loaded', 'loaded by its first request');
  });

  it('routes completions, responses and /v1/generate too; aliases and no model pick the default', async () => {
    const completion = await client.completions.create({ model: 'looper', prompt: 'Once', max_tokens: 5 });
    assert.equal(completion.model, 'looper');
    const response = await client.responses.create({ model: 'looper', input: 'Hi', max_output_tokens: 20 });
    assert.equal(response.model, 'looper');
    assert.equal(response.status, 'incomplete');
    for (const [model, expected] of [['looper', 'looper'], ['tiny', 'tiny'], ['gemma-small', 'tiny'], ['gpt-4o-mini', 'tiny'], [undefined, 'tiny']] as const) {
      const res = await json(`${service.url}/v1/generate`, { prompt: 'Hi', max_tokens: 20, ...(model ? { model } : {}) });
      const body = (await res.json()) as { model: string; finish_reason: string };
      assert.equal(res.status, 200, String(model));
      assert.equal(body.model, expected, String(model));
      assert.equal(body.finish_reason, expected === 'looper' ? 'length' : 'stop', String(model));
    }
  });

  it('routes transcriptions by model; whisper-1 and gpt-4o-mini-transcribe pick the default', async () => {
    const noSpeech = async (model?: string) => {
      const res = await fetch(`${service.url}/v1/speech-to-text`, { method: 'POST', body: sttForm(model) });
      assert.equal(res.status, 200, `${model}: ${await res.clone().text()}`);
      const body = (await res.json()) as { text: string; model: string; segments: { no_speech_prob: number }[] };
      assert.equal(body.text.trim(), TINY_WHISPER_TEXT);
      return { model: body.model, p: body.segments[0]!.no_speech_prob };
    };
    const b = await noSpeech('whisper-b');
    assert.equal(b.model, 'whisper-b');
    assert.ok(Math.abs(b.p - 0.5) < 0.01, `whisper-b's no-speech probability is 0.5, got ${b.p}`);
    for (const name of ['whisper-a', 'whisper-1', 'gpt-4o-mini-transcribe', undefined]) {
      const a = await noSpeech(name);
      assert.equal(a.model, 'whisper-a', String(name));
      assert.ok(Math.abs(a.p - 0.5) > 0.05, `${name}: the default model's no-speech probability differs from whisper-b's, got ${a.p}`);
    }
    const res = await fetch(`${service.url}/v1/audio/transcriptions`, { method: 'POST', body: sttForm('whisper-b') });
    assert.equal(res.headers.get('x-stt-model'), 'whisper-b');
    // the openai SDK with its default names
    for (const model of ['whisper-1', 'gpt-4o-mini-transcribe']) {
      const t = await client.audio.transcriptions.create({ model, file: await toFile(wav(2), 'a.wav', { type: 'audio/wav' }) });
      assert.equal(t.text.trim(), TINY_WHISPER_TEXT);
    }
  });

  it('routes the dialogue (HTTP and WebSocket) by model; an unknown one is refused before the first turn', async () => {
    for (const [model, finish] of [['looper', 'length'], ['tiny', 'stop'], [undefined, 'stop']] as const) {
      const res = await json(`${service.url}/v1/dialogue`, { text: 'Hi', response_modalities: ['text'], max_tokens: 40, ...(model ? { model } : {}) });
      const body = (await res.json()) as { reply_text: string };
      assert.equal(res.status, 200, String(model));
      // the looping model repeats its reply to max_tokens; the tiny one says it once
      assert.equal(body.reply_text.split(TINY_GEMMA_REPLY).length - 1 > 1, finish === 'length', `${model}: ${body.reply_text}`);
    }
    const unknown = await json(`${service.url}/v1/dialogue`, { text: 'Hi', response_modalities: ['text'], model: 'gpt-9' });
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as Envelope).error.code, 'model_not_found');
    const socket = new WebSocket(`${service.url.replace('http', 'ws')}/ws/dialogue?model=gpt-9`);
    const first = await new Promise<{ type: string; error: { code: string } }>((resolve, reject) => {
      socket.once('message', (data) => resolve(JSON.parse(String(data)) as { type: string; error: { code: string } }));
      socket.once('error', reject);
    });
    assert.deepEqual([first.type, first.error.code], ['error', 'model_not_found']);
    socket.close();
  });

  it("accepts the SDKs' speech names for the default voice", async () => {
    for (const model of ['tts-1', 'gpt-4o-mini-tts']) {
      const speech = await client.audio.speech.create({ model, input: 'Hi.', voice: 'alloy', response_format: 'wav' });
      assert.ok((await speech.arrayBuffer()).byteLength > 44, model);
    }
  });

  it('answers an unknown model with 404 model_not_found listing the ids, on every route that takes one', async () => {
    const attempts: [string, Response][] = [
      ['/v1/chat/completions', await json(`${service.url}/v1/chat/completions`, { model: 'gpt-9', messages: [{ role: 'user', content: 'Hi' }] })],
      ['/v1/completions', await json(`${service.url}/v1/completions`, { model: 'gpt-9', prompt: 'Hi' })],
      ['/v1/responses', await json(`${service.url}/v1/responses`, { model: 'gpt-9', input: 'Hi' })],
      ['/v1/generate', await json(`${service.url}/v1/generate`, { model: 'gpt-9', prompt: 'Hi' })],
      ['/v1/audio/transcriptions', await fetch(`${service.url}/v1/audio/transcriptions`, { method: 'POST', body: sttForm('gpt-9') })],
      ['/v1/speech-to-text', await fetch(`${service.url}/v1/speech-to-text`, { method: 'POST', body: sttForm('gpt-9') })],
    ];
    for (const [route, res] of attempts) {
      assert.equal(res.status, 404, route);
      const { error } = (await res.json()) as Envelope;
      assert.equal(error.code, 'model_not_found', route);
      assert.equal(error.param, 'model', route);
      const ids = route.includes('audio') || route.includes('speech') ? /whisper-a, whisper-b/ : /tiny, looper/;
      assert.match(error.message, ids, route);
    }
    await assert.rejects(client.chat.completions.create({ model: 'gpt-9', messages: [{ role: 'user', content: 'Hi' }] }), OpenAI.NotFoundError);
  });
});

describe('keep-alive and operator load/unload (MODEL_KEEP_ALIVE)', () => {
  let dir: string;
  let service: ServiceProcess;
  const state = async (id: string) => ((await (await fetch(`${service.url}/v1/models`)).json()) as { data: ListedModel[] }).data.find((m) => m.id === id)!;
  /** The service's child processes (the LLM runners; nothing else forks here). */
  const children = () => childPids(service.child.pid!).length;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'models-file-'));
    const file = path.join(dir, 'models.json');
    fs.writeFileSync(file, JSON.stringify({ llm: [{ id: 'tiny', model: tinyGemmaPath(), context: 512, parallel: 1, threads: 1 }, { id: 'looper', model: loopingGemmaPath(), context: 1024, parallel: 1, threads: 1, preload: false }], stt: [] }));
    service = await spawnReadyService({ MODELS_FILE: file, MODEL_KEEP_ALIVE: '1s', LLM_DEVICE: 'cpu', ENABLE_LOCAL_WHISPER: 'false', STT_BACKEND: 'local', TTS_BACKEND: 'embedded' });
  });
  after(async () => {
    await stopService(service);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('loads a model on request, unloads it when idle past the keep-alive (its runner exits), and loads it again for the next request', async () => {
    assert.equal((await state('looper')).state, 'unloaded');
    // the preloaded default, never asked for, is idle from start-up: unloaded past the keep-alive too
    await until('tiny to unload', async () => (await state('tiny')).state === 'unloaded');
    await until("tiny's runner to exit", async () => children() === 0);
    const loaded = await fetch(`${service.url}/v1/models/looper/load`, { method: 'POST' });
    assert.equal(loaded.status, 200);
    const report = (await loaded.json()) as ListedModel;
    assert.equal(report.state, 'loaded');
    assert.ok((report.memory_bytes ?? 0) > 0);
    assert.equal(children(), 1, "looper's runner process");
    // idle past MODEL_KEEP_ALIVE: unloaded, its runner gone, its memory freed
    await until('looper to unload', async () => (await state('looper')).state === 'unloaded');
    assert.equal((await state('looper')).memory_bytes, undefined);
    await until("looper's runner to exit", async () => children() === 0);
    const res = await json(`${service.url}/v1/chat/completions`, { model: 'looper', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 10 });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { choices: { finish_reason: string }[] }).choices[0]!.finish_reason, 'length');
  });

  it('unloads on request; unknown names are 404', async () => {
    assert.equal((await fetch(`${service.url}/v1/models/looper/load`, { method: 'POST' })).status, 200);
    const unloaded = await fetch(`${service.url}/v1/models/looper/unload`, { method: 'POST' });
    assert.equal(unloaded.status, 200);
    assert.equal(((await unloaded.json()) as ListedModel).state, 'unloaded');
    const unknown = await fetch(`${service.url}/v1/models/gpt-9/unload`, { method: 'POST' });
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as Envelope).error.code, 'model_not_found');
  });
});

describe('the models file at start-up', () => {
  it('lists every problem, each with the file path; ids and aliases clashing across capabilities or with the SDK speech-to-text names are problems', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'models-file-'));
    const file = path.join(dir, 'bad.yaml');
    fs.writeFileSync(file, ['llm:', '  - id: a', '    model: /m.gguf', '    context: 1', '    turbo: true', '  - id: a', '    model: /n.gguf', '    backend: openai', 'stt:', '  - model: base.en'].join('\n'));
    try {
      assert.throws(
        () => loadConfig({ MODELS_FILE: file }),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError);
          const problems = error.problems.join('\n');
          for (const expected of [/llm\[0\]\.context/, /llm\[0\]: Unrecognized key: "turbo"/i, /llm\[1\]\.id: "a" is already used by llm\[0\]\.id/, /llm\[1\]\.base_url: backend openai needs base_url/, /stt\[0\]\.id/]) assert.match(problems, expected);
          assert.ok(error.problems.every((p) => p.startsWith(`MODELS_FILE: ${file}: `)), problems);
          return true;
        },
      );
      assert.throws(() => loadConfig({ MODELS_FILE: path.join(dir, 'absent.yaml') }), /MODELS_FILE: .*absent\.yaml: file not found/);
      // names are unique across capabilities, and an LLM cannot take the SDKs' speech-to-text names
      const clash = path.join(dir, 'clash.yaml');
      fs.writeFileSync(clash, ['llm:', '  - id: shared', '    model: /m.gguf', '    aliases: [whisper-1, fast]', 'stt:', '  - id: shared', '    model: base.en', '  - id: gpt-4o-mini', '    model: tiny', '    aliases: [fast]'].join('\n'));
      assert.throws(
        () => loadConfig({ MODELS_FILE: clash }),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError);
          const problems = error.problems.join('\n');
          for (const expected of [/llm\[0\]\.aliases\[0\]: "whisper-1" is a built-in name of the default speech-to-text model/, /stt\[0\]\.id: "shared" is already used by llm\[0\]\.id/, /stt\[1\]\.aliases\[0\]: "fast" is already used by llm\[0\]\.aliases\[1\]/]) assert.match(problems, expected);
          assert.equal(error.problems.length, 3, problems);
          assert.ok(error.problems.every((p) => p.startsWith(`MODELS_FILE: ${clash}: `)), problems);
          return true;
        },
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
