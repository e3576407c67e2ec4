/**
 * /v1/realtime beyond one turn, on the real engines with API keys on: barge-in, transcription-only
 * sessions, ephemeral client keys (valid once, expiring, never logged), the browser subprotocol
 * form of the key, and a client vanishing mid-response (the LLM and TTS stop).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { startApp, type TestApp } from '../helpers/app.ts';
import { metricSum } from '../helpers/metrics.ts';
import { loopingGemmaPath, tinyWhisperPath } from '../helpers/models.ts';
import { appendPcm, openRealtime, speech24k } from '../helpers/realtime.ts';
import { closeSpeech } from '../helpers/speech.ts';
import { recordSecrets } from '../helpers/test-logs.ts';

const KEY = 'realtime-sessions-key-1';
const OTHER = 'realtime-sessions-key-2';
const TRANSCRIPT = /^(Hello from the tiny whisper model\.\s*)+$/;
const auth = { headers: { Authorization: `Bearer ${KEY}` } };

function handshake(url: string, options: WebSocket.ClientOptions & { protocols?: string[] } = {}): Promise<{ status: number; protocol?: string; ws?: WebSocket; first?: Promise<{ session: { instructions: string } }> }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, options.protocols ?? [], options);
    const first = new Promise<{ session: { instructions: string } }>((r) => ws.once('message', (d) => r(JSON.parse(d.toString()))));
    ws.once('open', () => resolve({ status: 101, protocol: ws.protocol, ws, first }));
    ws.once('unexpected-response', (_req, res) => resolve({ status: res.statusCode ?? 0 }));
    ws.once('error', () => undefined);
  });
}

async function mint(t: TestApp, body: object = {}, key = KEY): Promise<{ value: string; expires_at: number; session: { instructions: string } }> {
  const res = await fetch(`${t.url}/v1/realtime/client_secrets`, { method: 'POST', headers: { Authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal(res.status, 200);
  const secret = (await res.json()) as { value: string; expires_at: number; session: { instructions: string } };
  recordSecrets([secret.value]); // the log check fails the run if it is ever logged
  return secret;
}

describe('WS /v1/realtime: barge-in, transcription sessions, ephemeral keys', () => {
  let t: TestApp;
  before(async () => {
    t = await startApp({ env: { GEMMA_MODEL: loopingGemmaPath(), LOCAL_WHISPER_MODEL: tinyWhisperPath(), STT_PARTIAL_INTERVAL_MS: '0', DIALOGUE_MAX_TOKENS: '4000', API_KEY_ENABLED: 'true', API_KEYS: `${KEY},${OTHER}` } });
  });
  after(async () => {
    await t.close();
    await closeSpeech();
  });

  it('barge-in: speech during a response cancels it at once (turn_detected); the item keeps what was said; the next turn is answered', async () => {
    const rt = await openRealtime(t.wsUrl, auth);
    await appendPcm(rt.send, await speech24k([{ silence: 0.3 }, 'Tell me a very long story.', { silence: 0.8 }]), 24000);
    await rt.waitFor((e) => e.type === 'response.output_audio.delta', 30_000);
    const before = rt.events.length;
    await appendPcm(rt.send, await speech24k(['Stop, stop!', { silence: 0.8 }]), 24000, 1);
    const started = await rt.waitFor((e) => e.type === 'input_audio_buffer.speech_started' && rt.events.indexOf(e) >= before);
    const done = await rt.waitFor((e) => e.type === 'response.done');
    const response = done.response as { status: string; status_details: { reason: string }; output: { status: string; content: { transcript: string }[] }[] };
    assert.deepEqual([response.status, response.status_details.reason], ['cancelled', 'turn_detected']);
    assert.ok(done.at >= started.at);
    assert.equal(response.output[0]!.status, 'incomplete');
    const first = rt.events.find((e) => e.type === 'response.created')!.response as { id: string };
    const said = rt.events.filter((e) => e.type === 'response.output_audio_transcript.delta' && e.response_id === first.id).map((e) => e.delta).join('');
    assert.ok(said.length > 0);
    assert.equal(response.output[0]!.content[0]!.transcript, said);
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(!rt.events.some((e) => e.response_id === first.id && e.type.endsWith('.delta') && e.at > done.at), 'nothing of the cancelled response after its response.done');
    // the interrupting turn gets its own response
    const second = await rt.waitFor((e) => e.type === 'response.created' && (e.response as { id: string }).id !== first.id, 30_000);
    assert.ok(second.at > done.at);
    rt.ws.close();
  });

  it('a transcription session gives captions (committed, item, transcription delta/completed) and no responses', async () => {
    const rt = await openRealtime(t.wsUrl, auth);
    rt.send({ type: 'session.update', session: { type: 'transcription', audio: { input: { transcription: { model: 'whisper-1', language: 'en' }, turn_detection: { type: 'server_vad', silence_duration_ms: 500 } } } } });
    const updated = await rt.waitFor((e) => e.type === 'session.updated');
    assert.equal((updated.session as { object: string }).object, 'realtime.transcription_session');
    await appendPcm(rt.send, await speech24k([{ silence: 0.3 }, 'What is the weather like today?', { silence: 0.9 }]), 24000);
    const completed = await rt.waitFor((e) => e.type === 'conversation.item.input_audio_transcription.completed', 30_000);
    assert.match(completed.transcript as string, TRANSCRIPT);
    const types = rt.events.map((e) => e.type);
    for (const type of ['input_audio_buffer.speech_started', 'input_audio_buffer.speech_stopped', 'input_audio_buffer.committed', 'conversation.item.added', 'conversation.item.done', 'conversation.item.input_audio_transcription.delta']) assert.ok(types.indexOf(type) >= 0 && types.indexOf(type) < types.indexOf('conversation.item.input_audio_transcription.completed'), `${type}: ${types.join(', ')}`);
    rt.send({ type: 'response.create', event_id: 'ev_r' });
    const refused = await rt.waitFor((e) => e.type === 'error');
    assert.equal((refused.error as { event_id: string }).event_id, 'ev_r');
    assert.ok(!types.some((x) => x.startsWith('response.')));
    rt.ws.close();
  });

  it('live captions: partial transcripts arrive as deltas while the user speaks (STT_PARTIAL_INTERVAL_MS); the deltas add up to the completed transcript', async () => {
    const captions = await startApp({ env: { GEMMA_MODEL: loopingGemmaPath(), LOCAL_WHISPER_MODEL: tinyWhisperPath(), STT_PARTIAL_INTERVAL_MS: '300' } });
    try {
      const rt = await openRealtime(captions.wsUrl);
      rt.send({ type: 'session.update', session: { type: 'transcription', audio: { input: { transcription: { model: 'whisper-1' } } } } });
      await rt.waitFor((e) => e.type === 'session.updated');
      await appendPcm(rt.send, await speech24k([{ silence: 0.3 }, 'What is the weather like today? I would like to know.', { silence: 0.9 }]), 24000, 1);
      const completed = await rt.waitFor((e) => e.type === 'conversation.item.input_audio_transcription.completed', 30_000);
      const stopped = rt.events.find((e) => e.type === 'input_audio_buffer.speech_stopped')!;
      const deltas = rt.events.filter((e) => e.type === 'conversation.item.input_audio_transcription.delta');
      assert.ok(deltas.some((d) => d.at < stopped.at), `a caption before the end of the turn: ${rt.events.map((e) => e.type).join(', ')}`);
      assert.ok(deltas.every((d) => d.item_id === completed.item_id));
      assert.equal(deltas.map((d) => d.delta).join(''), completed.transcript);
      rt.ws.close();
    } finally {
      await captions.close();
    }
  });

  it('ephemeral keys: minted with a key, open one connection (browser subprotocol) with the minted session; reused, expired or elsewhere: 401; never logged', async () => {
    const secret = await mint(t, { session: { instructions: 'Speak like a pirate.' } });
    assert.match(secret.value, /^ek_/);
    assert.ok(secret.expires_at > Date.now() / 1000 + 590 && secret.expires_at <= Date.now() / 1000 + 601);
    assert.equal(secret.session.instructions, 'Speak like a pirate.');
    const url = `${t.wsUrl}/v1/realtime`;
    const first = await handshake(url, { protocols: ['realtime', `openai-insecure-api-key.${secret.value}`] });
    assert.equal(first.status, 101);
    assert.equal(first.protocol, 'realtime');
    const created = await first.first!;
    assert.equal(created.session.instructions, 'Speak like a pirate.');
    assert.equal((await handshake(url, { protocols: ['realtime', `openai-insecure-api-key.${secret.value}`] })).status, 401, 'once per connection');
    first.ws!.close();
    const short = await mint(t, { expires_after: { anchor: 'created_at', seconds: 1 } });
    await new Promise((r) => setTimeout(r, 1300));
    assert.equal((await handshake(url, { headers: { Authorization: `Bearer ${short.value}` } })).status, 401, 'expired');
    const unused = await mint(t);
    assert.equal((await fetch(`${t.url}/v1/models`, { headers: { Authorization: `Bearer ${unused.value}` } })).status, 401, 'not a key for other routes');
    assert.equal((await fetch(`${t.url}/v1/realtime/client_secrets`, { method: 'POST' })).status, 401, 'minting needs a key');
    // a real key in the browser form works too
    const browser = await handshake(url, { protocols: ['realtime', `openai-insecure-api-key.${KEY}`] });
    assert.deepEqual([browser.status, browser.protocol], [101, 'realtime']);
    browser.ws!.close();
    for (const value of [secret.value, short.value, unused.value]) assert.ok(!t.logs.some((line) => line.includes(value)), 'an ephemeral key reached the logs');
  });

  it('a client vanishing mid-response stops the LLM and the TTS', async () => {
    const rt = await openRealtime(t.wsUrl, auth);
    const abortedBefore = await metricSum(t.url, 'dialogue_turn_duration_seconds_count', { outcome: 'aborted' });
    const ttsAbortedBefore = await metricSum(t.url, 'dependency_duration_seconds_count', { operation: 'synthesize', outcome: 'aborted' });
    rt.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Go on and on.' }] } });
    rt.send({ type: 'response.create' });
    await rt.waitFor((e) => e.type === 'response.output_audio.delta', 30_000);
    rt.ws.terminate();
    const deadline = Date.now() + 20_000;
    let text = '';
    while (Date.now() < deadline) {
      text = await (await fetch(`${t.url}/metrics`)).text();
      if (/llm_active_generations 0/.test(text) && (await metricSum(t.url, 'dialogue_turn_duration_seconds_count', { outcome: 'aborted' })) > abortedBefore) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(text, /llm_active_generations 0/, 'the generation stopped');
    assert.ok((await metricSum(t.url, 'dialogue_turn_duration_seconds_count', { outcome: 'aborted' })) > abortedBefore, 'the turn ended as aborted');
    assert.ok((await metricSum(t.url, 'dependency_duration_seconds_count', { operation: 'stream', outcome: 'aborted' })) >= 1, 'the LLM stream was aborted');
    // the TTS: the sentence being spoken when the client left is aborted — or, when the client left
    // between two sentences (the voice is faster than the looping model), no sentence starts after
    const ttsAll = () => metricSum(t.url, 'dependency_duration_seconds_count', { operation: 'synthesize' });
    const ttsAborted = (await metricSum(t.url, 'dependency_duration_seconds_count', { operation: 'synthesize', outcome: 'aborted' })) > ttsAbortedBefore;
    const spokenThen = await ttsAll();
    await new Promise((r) => setTimeout(r, 1000));
    assert.ok(ttsAborted || (await ttsAll()) === spokenThen, 'speech stopped: the sentence in progress was aborted, or no sentence started after the client left');
  });
});
