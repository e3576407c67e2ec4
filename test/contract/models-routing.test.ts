/**
 * Routing by `model` on the surfaces beyond the REST routes (issue #16), on a real service process
 * with the two-by-two models file (test/helpers/models-file.ts): WS /ws/stt (`?model=`, `model` in
 * the config message), transcription jobs (validated at submit, the worker uses the model) and
 * /v1/realtime (`?model=` / `session.model` for the LLM, `transcription.model` for speech-to-text;
 * OpenAI's realtime and transcription names pick the defaults; other names → `model_not_found`).
 *
 * The Whisper models are told apart by their text: `whisper-a` says TINY_WHISPER_TEXT, `whisper-b` is
 * the "unsure" tiny model whose text is something else (STT_NO_SPEECH_THRESHOLD=1 keeps it). The LLMs
 * by their answers: `tiny` says its reply once, `looper` repeats it to the token limit.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { TINY_GEMMA_REPLY } from '../../scripts/models/tiny-gemma.ts';
import { wav } from '../helpers/audio.ts';
import { startModelsService, type ModelsService } from '../helpers/models-file.ts';
import { unsureWhisperPath } from '../helpers/models.ts';
import { appendPcm, openRealtime, speech24k } from '../helpers/realtime.ts';
import { closeSpeech, speech } from '../helpers/speech.ts';
import { eventLog, streamPcm, type WsEvent } from '../helpers/ws.ts';
import type { ErrorEnvelope as Envelope } from '../../src/errors.ts';

const TINY_TEXT = /^(Hello from the tiny whisper model\.\s*)+$/;

interface Job {
  id: string;
  status: string;
  model: string | null;
  result?: { text: string };
  error?: unknown;
}

/** Resolves with the close code; rejects after `timeoutMs` (a socket left open is a failure, not a hang). */
const closed = (ws: WebSocket, timeoutMs = 15_000) =>
  new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the socket was not closed')), timeoutMs);
    ws.once('close', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
    ws.once('error', reject);
  });

/** Opens a socket the server should refuse after its handshake: the messages it sent before closing, and the close code. */
async function refusedSocket(url: string): Promise<{ code: number; messages: { type: string; error?: Envelope['error'] }[] }> {
  const ws = new WebSocket(url);
  const messages: { type: string; error?: Envelope['error'] }[] = [];
  ws.on('message', (data) => messages.push(JSON.parse(String(data)) as { type: string }));
  const code = await closed(ws).finally(() => ws.terminate());
  return { code, messages };
}

/** whisper-a's text, or whisper-b's (anything else, not empty). */
const whisper = (text: string) => (TINY_TEXT.test(text.trim()) ? 'whisper-a' : text.trim() ? 'whisper-b' : 'nothing');

describe('routing by model on /ws/stt, transcription jobs and /v1/realtime', () => {
  let running: ModelsService;
  let url: string;
  let wsUrl: string;
  let turn: Int16Array;

  before(async () => {
    running = await startModelsService({ STT_NO_SPEECH_THRESHOLD: '1', STT_PARTIAL_INTERVAL_MS: '0', LOG_LEVEL: 'info' }, { whisperB: unsureWhisperPath() });
    url = running.service.url;
    wsUrl = url.replace('http', 'ws');
    turn = await speech([{ silence: 0.3 }, 'Hello there, how are you doing today?', { silence: 0.3 }]);
  });
  after(async () => {
    await running.close();
    await closeSpeech();
  });

  /** One /ws/stt turn (streamed, then committed): the final transcript event. */
  const sttTurn = async (query: string, before?: object): Promise<WsEvent> => {
    const ws = new WebSocket(`${wsUrl}/ws/stt${query}`);
    const log = eventLog(ws);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    await log.waitFor((e) => e.type === 'ready');
    if (before) ws.send(JSON.stringify(before));
    await streamPcm(ws, turn, 16000, 4);
    ws.send('{"type":"commit"}');
    const final = await log.waitFor((e) => e.type === 'transcript.final', 60_000);
    ws.close();
    return final;
  };

  it('/ws/stt routes ?model= and the config message; aliases and no model pick the default', async () => {
    const b = await sttTurn('?model=whisper-b');
    assert.deepEqual([b.model, whisper(b.text as string)], ['whisper-b', 'whisper-b'], JSON.stringify(b));
    const fromConfig = await sttTurn('', { type: 'config', model: 'whisper-b' });
    assert.deepEqual([fromConfig.model, whisper(fromConfig.text as string)], ['whisper-b', 'whisper-b']);
    for (const query of ['?model=whisper-a', '?model=whisper-1', '']) {
      const a = await sttTurn(query);
      assert.deepEqual([a.model, whisper(a.text as string)], ['whisper-a', 'whisper-a'], query);
    }
  });

  it('/ws/stt: an unknown ?model= gets the error event model_not_found and the close, before any audio; in config, an error and the model stays', async () => {
    const { code, messages } = await refusedSocket(`${wsUrl}/ws/stt?model=gpt-9`);
    assert.ok(code >= 1000, String(code));
    assert.deepEqual(messages.map((m) => [m.type, m.error?.code]), [['error', 'model_not_found']], 'the error and nothing else (no ready)');
    assert.match(messages[0]!.error!.message, /whisper-a, whisper-b/);

    const open = new WebSocket(`${wsUrl}/ws/stt?model=whisper-b`);
    const log = eventLog(open);
    await log.waitFor((e) => e.type === 'ready');
    open.send(JSON.stringify({ type: 'config', model: 'gpt-9' }));
    const error = await log.waitFor((e) => e.type === 'error');
    assert.equal((error.error as Envelope['error']).code, 'model_not_found');
    await streamPcm(open, turn, 16000, 4);
    open.send('{"type":"commit"}');
    const final = await log.waitFor((e) => e.type === 'transcript.final', 60_000);
    assert.equal(final.model, 'whisper-b', 'the previous model stays');
    open.close();
  });

  it('/ws/dialogue: an unknown ?stt_model= (as ?model=) gets model_not_found and the close before ready; in config, an error and the settings stay', async () => {
    const { code, messages } = await refusedSocket(`${wsUrl}/ws/dialogue?stt_model=gpt-9`);
    assert.ok(code >= 1000, String(code));
    assert.deepEqual(messages.map((m) => [m.type, m.error?.code]), [['error', 'model_not_found']], 'the error and nothing else (no ready)');

    const open = new WebSocket(`${wsUrl}/ws/dialogue?response_modalities=text`);
    const log = eventLog(open);
    await log.waitFor((e) => e.type === 'ready');
    const errors = () => log.events.filter((e) => e.type === 'error');
    for (const [i, config] of [{ model: 'gpt-9' }, { stt_model: 'gpt-9' }].entries()) {
      open.send(JSON.stringify({ type: 'config', ...config }));
      await log.waitFor(() => errors().length > i);
      assert.equal((errors()[i]!.error as Envelope['error']).code, 'model_not_found', JSON.stringify(config));
    }
    open.send(JSON.stringify({ type: 'text', text: 'Hello?' }));
    const done = await log.waitFor((e) => e.type === 'reply.done', 60_000);
    assert.ok(done, 'a turn after the refused configs still runs on the previous settings');
    open.close();
  });

  it('transcription jobs: model routes the worker; an unknown one is refused at submit (404), no job made', async () => {
    const submit = (model?: string) => {
      const form = new FormData();
      form.append('file', new Blob([wav(2)], { type: 'audio/wav' }), 'a.wav');
      if (model) form.append('model', model);
      return fetch(`${url}/v1/audio/transcriptions/jobs`, { method: 'POST', body: form });
    };
    const finished = async (id: string): Promise<Job> => {
      const deadline = Date.now() + 120_000;
      for (;;) {
        const job = (await (await fetch(`${url}/v1/audio/transcriptions/jobs/${id}`)).json()) as Job;
        if (job.status !== 'queued' && job.status !== 'running') return job;
        assert.ok(Date.now() < deadline, `job ${id} still ${job.status}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    for (const [model, expected] of [['whisper-b', 'whisper-b'], ['whisper-1', 'whisper-a'], [undefined, 'whisper-a']] as const) {
      const res = await submit(model);
      assert.equal(res.status, 202, `${model}: ${await res.clone().text()}`);
      const job = await finished(((await res.json()) as { id: string }).id);
      assert.equal(job.status, 'completed', JSON.stringify(job));
      assert.equal(whisper(job.result!.text), expected, `${model}: ${job.result!.text}`);
      if (model) assert.equal(job.model, expected, 'the job reports the model it resolved to');
    }
    const before = ((await (await fetch(`${url}/v1/audio/transcriptions/jobs`)).json()) as { data: unknown[] }).data.length;
    const unknown = await submit('gpt-9');
    assert.equal(unknown.status, 404);
    const { error } = (await unknown.json()) as Envelope;
    assert.deepEqual([error.code, error.param], ['model_not_found', 'model']);
    assert.match(error.message, /whisper-a, whisper-b/);
    assert.equal(((await (await fetch(`${url}/v1/audio/transcriptions/jobs`)).json()) as { data: unknown[] }).data.length, before, 'no job was made');
  });

  /** A text response to "Hi" on a realtime connection opened with `query`. */
  const realtimeReply = async (query: string, update?: object): Promise<string> => {
    const rt = await openRealtime(wsUrl, { query });
    rt.send({ type: 'session.update', session: { type: 'realtime', output_modalities: ['text'], ...update } });
    await rt.waitFor((e) => e.type === 'session.updated');
    rt.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Hi' }] } });
    rt.send({ type: 'response.create', response: { max_output_tokens: 30 } });
    const done = await rt.waitFor((e) => e.type === 'response.output_text.done', 60_000);
    rt.ws.close();
    return done.text as string;
  };
  const repeats = (text: string) => text.split(TINY_GEMMA_REPLY).length - 1;

  it("/v1/realtime routes the LLM by ?model= and session.model; OpenAI's realtime names pick the default", async () => {
    assert.ok(repeats(await realtimeReply('?model=looper')) > 1, 'looper repeats its reply');
    assert.ok(repeats(await realtimeReply('', { model: 'looper' })) > 1, 'session.model routes too');
    for (const query of ['?model=tiny', '?model=gemma-small', '?model=gpt-realtime', '?model=gpt-realtime-mini', '?model=gpt-4o-realtime-preview-2024-12-17', '?model=gpt-4o-mini-realtime-preview', '']) {
      assert.equal(await realtimeReply(query), TINY_GEMMA_REPLY, query);
    }
  });

  it('/v1/realtime routes transcription.model in a transcription session; OpenAI names pick the default', async () => {
    const pcm = await speech24k([{ silence: 0.3 }, 'What is the weather like today?', { silence: 0.9 }]);
    for (const [model, expected] of [['whisper-b', 'whisper-b'], ['gpt-4o-transcribe', 'whisper-a'], ['whisper-1', 'whisper-a']] as const) {
      const rt = await openRealtime(wsUrl);
      rt.send({ type: 'session.update', session: { type: 'transcription', audio: { input: { transcription: { model, language: 'en' }, turn_detection: { type: 'server_vad', silence_duration_ms: 500 } } } } });
      const updated = await rt.waitFor((e) => e.type === 'session.updated');
      assert.equal((updated.session as { audio: { input: { transcription: { model: string } } } }).audio.input.transcription.model, model, 'echoed as sent');
      await appendPcm(rt.send, pcm, 24000, 4);
      const completed = await rt.waitFor((e) => e.type === 'conversation.item.input_audio_transcription.completed', 60_000);
      assert.equal(whisper(completed.transcript as string), expected, `${model}: ${completed.transcript as string}`);
      rt.ws.close();
    }
  });

  it('/v1/realtime: an unknown model is an error event model_not_found (at connection: then close; in session.update: the session is unchanged); client_secrets refuses it (404)', async () => {
    const { messages } = await refusedSocket(`${wsUrl}/v1/realtime?model=gpt-9`);
    assert.deepEqual(messages.map((m) => [m.type, m.error?.code]), [['error', 'model_not_found']], 'no session.created');
    assert.match(messages[0]!.error!.message, /tiny, looper/);

    const rt = await openRealtime(wsUrl);
    for (const session of [{ type: 'realtime', model: 'gpt-9' }, { type: 'transcription', audio: { input: { transcription: { model: 'whisper-9' } } } }]) {
      const id = `ev_${rt.events.length}`;
      rt.send({ type: 'session.update', event_id: id, session });
      const error = await rt.waitFor((e) => e.type === 'error' && (e.error as { event_id: string }).event_id === id);
      assert.equal((error.error as { code: string }).code, 'model_not_found');
    }
    assert.ok(!rt.events.some((e) => e.type === 'session.updated'), 'neither update was applied');
    rt.ws.close();
    assert.equal(await realtimeReply(''), TINY_GEMMA_REPLY);
    // an ephemeral key is not minted for a session that names an unknown model; a known one is
    const mint = (session: object) => fetch(`${url}/v1/realtime/client_secrets`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ session }) });
    const refused = await mint({ type: 'realtime', model: 'gpt-9' });
    assert.equal(refused.status, 404);
    assert.equal(((await refused.json()) as Envelope).error.code, 'model_not_found');
    const minted = await mint({ type: 'realtime', model: 'looper', audio: { input: { transcription: { model: 'whisper-b' } } } });
    assert.equal(minted.status, 200);
    assert.equal(((await minted.json()) as { session: { model: string } }).session.model, 'looper');
  });
});
