/**
 * WS /v1/realtime (the OpenAI Realtime protocol) on the real engines (tiny Gemma, tiny whisper,
 * the embedded voice, the WebRTC VAD), with a raw WebSocket client: the server events of a spoken
 * turn and of a typed turn in OpenAI's order (and all of them on OpenAI's published list), manual
 * turns, cancellation, G.711 input, and hostile input.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { encodeG711 } from '../../src/audio/g711.ts';
import { float32ToInt16, int16ToFloat32 } from '../../src/audio/pcm.ts';
import { resample } from '../../src/audio/resample.ts';
import { startApp, type TestApp } from '../helpers/app.ts';
import { decodeWithFfmpeg } from '../helpers/ffmpeg.ts';
import { loopingGemmaPath, tinyGemmaPath, tinyWhisperPath } from '../helpers/models.ts';
import { appendPcm, openRealtime, publishedServerEvents, speech24k, type RtEvent } from '../helpers/realtime.ts';
import { closeSpeech, speech } from '../helpers/speech.ts';
import WebSocket from 'ws';

const REPLY = 'Hello from the tiny Gemma model.';
const TRANSCRIPT = /^(Hello from the tiny whisper model\.\s*)+$/;

/** The types in order with repeats of a delta collapsed. */
function sequence(events: RtEvent[]): string[] {
  const out: string[] = [];
  for (const e of events) if (out.at(-1) !== e.type || !e.type.endsWith('.delta')) out.push(e.type);
  return out;
}

/** Checks that `expected` occurs in `types` in this order (other events may come between). */
function assertInOrder(types: string[], expected: string[]): void {
  let at = -1;
  for (const type of expected) {
    const next = types.indexOf(type, at + 1);
    assert.ok(next > at, `${type} missing or out of order in: ${types.join(', ')}`);
    at = next;
  }
}

const RESPONSE_AUDIO = ['response.created', 'response.output_item.added', 'conversation.item.added', 'response.content_part.added', 'response.output_audio_transcript.delta', 'response.output_audio.delta', 'response.output_audio.done', 'response.output_audio_transcript.done', 'response.content_part.done', 'response.output_item.done', 'conversation.item.done', 'response.done', 'rate_limits.updated'];

describe('WS /v1/realtime', () => {
  const apps: TestApp[] = [];
  let t: TestApp;
  let talkative: TestApp;
  const published = publishedServerEvents();
  before(async () => {
    t = await startApp({ env: { GEMMA_MODEL: tinyGemmaPath(), LOCAL_WHISPER_MODEL: tinyWhisperPath(), STT_PARTIAL_INTERVAL_MS: '0' } });
    talkative = await startApp({ env: { GEMMA_MODEL: loopingGemmaPath(), LOCAL_WHISPER_MODEL: tinyWhisperPath(), STT_PARTIAL_INTERVAL_MS: '0', DIALOGUE_MAX_TOKENS: '4000' } });
    apps.push(t, talkative);
  });
  after(async () => {
    for (const a of apps) await a.close();
    await closeSpeech();
  });

  it('a spoken turn (24 kHz PCM, server VAD): every server event in OpenAI\'s order and on its published list; transcript, reply text and audio', async () => {
    const rt = await openRealtime(t.wsUrl, { query: '?model=gemma-3-1b' });
    const created = rt.events[0]!;
    assert.equal((created.session as { model: string }).model, 'gemma-3-1b');
    assert.deepEqual((created.session as { audio: { input: { format: object } } }).audio.input.format, { type: 'audio/pcm', rate: 24000 });
    await appendPcm(rt.send, await speech24k([{ silence: 0.3 }, 'What is the weather like today?', { silence: 0.9 }]), 24000);
    const done = await rt.waitFor((e) => e.type === 'rate_limits.updated', 60_000);
    const types = sequence(rt.events);
    assertInOrder(types, ['session.created', 'input_audio_buffer.speech_started', 'input_audio_buffer.speech_stopped', 'input_audio_buffer.committed', 'conversation.item.added', 'conversation.item.done', 'response.created', 'conversation.item.input_audio_transcription.delta', 'conversation.item.input_audio_transcription.completed', ...RESPONSE_AUDIO.slice(1)]);
    for (const e of rt.events) assert.ok(published.has(e.type), `${e.type} is not on OpenAI's published server-event list`);
    for (const e of rt.events) assert.match(e.event_id as string, /^event_/);
    // transcript deltas run ahead of the audio they describe, and never after the transcript is done
    assert.ok(types.indexOf('response.output_audio_transcript.delta') < types.indexOf('response.output_audio.delta'));
    const started = rt.events.find((e) => e.type === 'input_audio_buffer.speech_started')!;
    const committed = rt.events.find((e) => e.type === 'input_audio_buffer.committed')!;
    assert.equal(committed.item_id, started.item_id);
    const completed = rt.events.find((e) => e.type === 'conversation.item.input_audio_transcription.completed')!;
    assert.equal(completed.item_id, started.item_id);
    assert.match(completed.transcript as string, TRANSCRIPT);
    const transcriptDone = rt.events.find((e) => e.type === 'response.output_audio_transcript.done')!;
    assert.equal(transcriptDone.transcript, REPLY);
    const response = rt.events.find((e) => e.type === 'response.done')!.response as { status: string; usage: { output_tokens: number }; output: { content: { transcript: string }[] }[] };
    assert.equal(response.status, 'completed');
    assert.ok(response.usage.output_tokens > 0);
    assert.equal(response.output[0]!.content[0]!.transcript, REPLY);
    const audio = Buffer.concat(rt.events.filter((e) => e.type === 'response.output_audio.delta').map((e) => Buffer.from(e.delta as string, 'base64')));
    const decoded = decodeWithFfmpeg(audio, 24000);
    assert.ok(decoded.seconds > 1 && decoded.rms > 0.02, `${decoded.seconds} s of reply audio, rms ${decoded.rms}`);
    assert.ok(done);
    // the user item now holds its transcript
    rt.send({ type: 'conversation.item.retrieve', item_id: started.item_id, event_id: 'ev_retrieve' });
    const retrieved = await rt.waitFor((e) => e.type === 'conversation.item.retrieved');
    assert.match((retrieved.item as { content: { transcript: string }[] }).content[0]!.transcript, TRANSCRIPT);
    rt.ws.close();
  });

  it('a typed turn with text output; conversation: "none" answers out of band', async () => {
    const rt = await openRealtime(t.wsUrl);
    rt.send({ type: 'session.update', event_id: 'ev_1', session: { type: 'realtime', output_modalities: ['text'], instructions: 'Be brief.' } });
    const updated = await rt.waitFor((e) => e.type === 'session.updated');
    assert.deepEqual((updated.session as { output_modalities: string[] }).output_modalities, ['text']);
    assert.equal((updated.session as { instructions: string }).instructions, 'Be brief.');
    rt.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Hello there!' }] } });
    rt.send({ type: 'response.create' });
    await rt.waitFor((e) => e.type === 'rate_limits.updated');
    const types = sequence(rt.events);
    assertInOrder(types, ['session.updated', 'conversation.item.added', 'conversation.item.done', 'response.created', 'response.output_item.added', 'conversation.item.added', 'response.content_part.added', 'response.output_text.delta', 'response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'conversation.item.done', 'response.done', 'rate_limits.updated']);
    assert.ok(!types.some((x) => x.startsWith('response.output_audio')));
    for (const e of rt.events) assert.ok(published.has(e.type), e.type);
    assert.equal(rt.events.find((e) => e.type === 'response.output_text.done')!.text, REPLY);
    // out of band: a reply that does not join the conversation
    const before = rt.events.length;
    rt.send({ type: 'response.create', response: { conversation: 'none', output_modalities: ['text'], metadata: { purpose: 'summary' } } });
    const oob = await rt.waitFor((e) => e.type === 'response.done' && rt.events.indexOf(e) >= before);
    const later = rt.events.slice(before).map((e) => e.type);
    assert.ok(!later.includes('conversation.item.added'), later.join(', '));
    assert.equal((oob.response as { conversation_id: unknown }).conversation_id, null);
    assert.deepEqual((oob.response as { metadata: unknown }).metadata, { purpose: 'summary' });
    // max_output_tokens cuts the reply: response.done says incomplete
    const mark = rt.events.length;
    rt.send({ type: 'response.create', response: { max_output_tokens: 2 } });
    const cut = await rt.waitFor((e) => e.type === 'response.done' && rt.events.indexOf(e) >= mark);
    const cutResponse = cut.response as { status: string; status_details: { reason: string }; usage: { output_tokens: number } };
    assert.deepEqual([cutResponse.status, cutResponse.status_details.reason, cutResponse.usage.output_tokens], ['incomplete', 'max_output_tokens', 2]);
    // an unknown voice: the reply comes as text, and an error says why
    rt.send({ type: 'session.update', session: { output_modalities: ['audio'], audio: { output: { voice: 'no-such-voice' } } } });
    const mark2 = rt.events.length;
    rt.send({ type: 'response.create' });
    await rt.waitFor((e) => e.type === 'response.done' && rt.events.indexOf(e) >= mark2);
    const noAudio = rt.events.slice(mark2).find((e) => e.type === 'error');
    assert.equal((noAudio?.error as { code: string } | undefined)?.code, 'audio_unavailable');
    assert.equal(rt.events.slice(mark2).find((e) => e.type === 'response.output_audio_transcript.done')?.transcript, REPLY);
    rt.ws.close();
  });

  it('manual turns (turn_detection: null) in G.711 μ-law: append, commit, response.create', async () => {
    const rt = await openRealtime(t.wsUrl);
    rt.send({ type: 'session.update', session: { audio: { input: { format: { type: 'audio/pcmu' }, turn_detection: null }, output: { format: { type: 'audio/pcma' } } } } });
    const updated = await rt.waitFor((e) => e.type === 'session.updated');
    assert.equal((updated.session as { audio: { input: { turn_detection: unknown } } }).audio.input.turn_detection, null);
    rt.send({ type: 'input_audio_buffer.commit', event_id: 'ev_empty' });
    const empty = await rt.waitFor((e) => e.type === 'error');
    assert.deepEqual([(empty.error as { code: string }).code, (empty.error as { event_id: string }).event_id], ['input_audio_buffer_commit_empty', 'ev_empty']);
    const at8k = float32ToInt16(await resample(int16ToFloat32(await speech(['What is the weather like today?'])), 16000, 8000));
    const ulaw = encodeG711(at8k, 'mulaw');
    for (let i = 0; i < ulaw.length; i += 1600) rt.send({ type: 'input_audio_buffer.append', audio: ulaw.subarray(i, i + 1600).toString('base64') });
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(!rt.events.some((e) => e.type.startsWith('input_audio_buffer.speech')), 'no VAD in manual mode');
    rt.send({ type: 'input_audio_buffer.commit' });
    await rt.waitFor((e) => e.type === 'input_audio_buffer.committed');
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(!rt.events.some((e) => e.type === 'response.created'), 'no response until asked');
    rt.send({ type: 'response.create' });
    await rt.waitFor((e) => e.type === 'response.done', 60_000);
    assert.match(rt.events.find((e) => e.type === 'conversation.item.input_audio_transcription.completed')!.transcript as string, TRANSCRIPT);
    // the manual buffer is bounded (WS_MAX_TURN_SECONDS): an append past it is refused, not kept
    const twelveSeconds = Buffer.alloc(12 * 8000, 0xff).toString('base64'); // μ-law silence
    for (const id of ['ev_a', 'ev_b', 'ev_c']) rt.send({ type: 'input_audio_buffer.append', event_id: id, audio: twelveSeconds });
    const tooLarge = await rt.waitFor((e) => e.type === 'error' && (e.error as { code: string }).code === 'input_audio_buffer_too_large');
    assert.equal((tooLarge.error as { event_id: string }).event_id, 'ev_c');
    rt.send({ type: 'input_audio_buffer.clear' });
    await rt.waitFor((e) => e.type === 'input_audio_buffer.cleared');
    const alaw = Buffer.concat(rt.events.filter((e) => e.type === 'response.output_audio.delta').map((e) => Buffer.from(e.delta as string, 'base64')));
    assert.ok(alaw.length > 8000, `${alaw.length} bytes of A-law (8 kHz, one byte a sample)`);
    rt.ws.close();
  });

  it('response.cancel stops a reply at once: response.done cancelled, the item keeps what was said', async () => {
    const rt = await openRealtime(talkative.wsUrl);
    rt.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Go on and on.' }] } });
    rt.send({ type: 'response.create' });
    await rt.waitFor((e) => e.type === 'response.output_audio.delta', 30_000);
    rt.send({ type: 'response.create', event_id: 'ev_twice' });
    const busy = await rt.waitFor((e) => e.type === 'error');
    assert.deepEqual([(busy.error as { code: string }).code, (busy.error as { event_id: string }).event_id], ['conversation_already_has_active_response', 'ev_twice']);
    rt.send({ type: 'response.cancel' });
    const done = await rt.waitFor((e) => e.type === 'response.done');
    const response = done.response as { status: string; status_details: { reason: string }; output: { id: string; status: string; content: { transcript: string }[] }[] };
    assert.deepEqual([response.status, response.status_details.reason], ['cancelled', 'client_cancelled']);
    assert.equal(response.output[0]!.status, 'incomplete');
    const said = rt.events.filter((e) => e.type === 'response.output_audio_transcript.delta').map((e) => e.delta).join('');
    assert.equal(response.output[0]!.content[0]!.transcript, said);
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(!rt.events.some((e) => e.type.startsWith('response.output_audio') && e.at > done.at), 'nothing of the reply after response.done');
    // cancelled before it began: still announced (response.created) before its response.done, as every response is
    for (let i = 0; i < 3; i++) {
      rt.send({ type: 'response.create' });
      rt.send({ type: 'response.cancel' });
    }
    await rt.waitFor(() => rt.events.filter((e) => e.type === 'response.done').length === 4);
    const order = rt.events.filter((e) => e.type === 'response.created' || e.type === 'response.done').map((e) => `${e.type}:${(e.response as { id: string }).id}`);
    for (const [i, event] of order.entries()) if (event.startsWith('response.done')) assert.equal(order[i - 1], event.replace('done', 'created'), `${event} follows its response.created: ${order.join(', ')}`);
    rt.ws.close();
  });

  it('hostile input: malformed JSON, unknown events and fields (error with the client event_id), unknown item ids, a frame over WS_MAX_MESSAGE_BYTES', async () => {
    const rt = await openRealtime(t.wsUrl);
    const errors = () => rt.events.filter((e) => e.type === 'error').map((e) => e.error as { code: string; event_id: string | null; param: string | null; message: string });
    rt.ws.send('{not json');
    rt.send({ type: 'conversation.nonsense', event_id: 'ev_unknown' });
    rt.send({ type: 'session.update', event_id: 'ev_field', session: { audio: { input: { echo_cancellation: true } } } });
    rt.send({ type: 'session.update', event_id: 'ev_tools', session: { tools: [{ type: 'function', name: 'f' }] } });
    rt.send({ type: 'input_audio_buffer.append', event_id: 'ev_b64', audio: 'not base64!' });
    rt.send({ type: 'conversation.item.retrieve', event_id: 'ev_item', item_id: 'item_from_someone_else' });
    rt.send({ type: 'response.cancel', event_id: 'ev_cancel' });
    rt.send({ type: 'constructor', event_id: 'ev_proto1' });
    rt.send({ type: '__proto__', event_id: 'ev_proto2' });
    await rt.waitFor(() => errors().length >= 9);
    const got = errors();
    assert.equal(got[0]!.code, 'invalid_json');
    assert.deepEqual(got.slice(1).map((e) => [e.code, e.event_id]), [
      ['invalid_event', 'ev_unknown'],
      ['unknown_parameter', 'ev_field'],
      ['invalid_value', 'ev_tools'],
      ['invalid_value', 'ev_b64'],
      ['item_not_found', 'ev_item'],
      ['response_cancel_not_active', 'ev_cancel'],
      ['invalid_event', 'ev_proto1'],
      ['invalid_event', 'ev_proto2'],
    ]);
    assert.match(got[2]!.message, /session\.audio\.input\.echo_cancellation/);
    assert.match(got[3]!.message, /tools/);
    // the socket still works
    rt.send({ type: 'session.update', session: { instructions: 'x' } });
    await rt.waitFor((e) => e.type === 'session.updated');
    // a frame over the limit closes the socket (1009) without harming the server
    const closed = new Promise<number>((r) => rt.ws.once('close', (code) => r(code)));
    rt.send({ type: 'input_audio_buffer.append', audio: Buffer.alloc(t.config.WS_MAX_MESSAGE_BYTES).toString('base64') });
    assert.equal(await closed, 1009);
    assert.equal((await fetch(`${t.url}/health`)).status, 200);
  });

  it('limits, metrics and shutdown like the other sockets: WS_MAX_STREAMS_PER_KEY, websocket_connections, the response in progress finishes before close 1001', async () => {
    const own = await startApp({ env: { GEMMA_MODEL: tinyGemmaPath(), LOCAL_WHISPER_MODEL: tinyWhisperPath(), STT_PARTIAL_INTERVAL_MS: '0', WS_MAX_STREAMS_PER_KEY: '1' } });
    let closedApp = false;
    try {
      const rt = await openRealtime(own.wsUrl);
      const refused = await new Promise<number>((resolve) => {
        const ws = new WebSocket(`${own.wsUrl}/v1/realtime`);
        ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.once('open', () => resolve(101));
        ws.once('error', () => undefined);
      });
      assert.equal(refused, 429);
      assert.match(await (await fetch(`${own.url}/metrics`)).text(), /^websocket_connections\{route="\/v1\/realtime"\} 1$/m);
      rt.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Hello there!' }] } });
      rt.send({ type: 'response.create' });
      await rt.waitFor((e) => e.type === 'response.created');
      const closed = new Promise<number>((r) => rt.ws.once('close', (code) => r(code)));
      const closing = own.close();
      closedApp = true;
      assert.equal(await closed, 1001);
      await closing;
      const done = rt.events.find((e) => e.type === 'response.done');
      assert.equal((done?.response as { status: string } | undefined)?.status, 'completed', 'the response in progress was finished before the close');
      assert.equal(rt.events.find((e) => e.type === 'response.output_audio_transcript.done')!.transcript, REPLY);
    } finally {
      if (!closedApp) await own.close();
    }
  });

  it('one connection never sees another\'s items', async () => {
    const a = await openRealtime(t.wsUrl);
    const b = await openRealtime(t.wsUrl);
    a.send({ type: 'conversation.item.create', item: { id: 'secret_item', type: 'message', role: 'user', content: [{ type: 'input_text', text: 'my secret' }] } });
    await a.waitFor((e) => e.type === 'conversation.item.done');
    for (const type of ['conversation.item.retrieve', 'conversation.item.delete']) b.send({ type, item_id: 'secret_item', event_id: type });
    b.send({ type: 'conversation.item.truncate', item_id: 'secret_item', content_index: 0, audio_end_ms: 0, event_id: 'truncate' });
    await b.waitFor(() => b.events.filter((e) => e.type === 'error').length === 3);
    assert.ok(b.events.filter((e) => e.type === 'error').every((e) => (e.error as { code: string }).code === 'item_not_found'));
    a.send({ type: 'conversation.item.retrieve', item_id: 'secret_item' });
    await a.waitFor((e) => e.type === 'conversation.item.retrieved');
    a.ws.close();
    b.ws.close();
  });

  it('a conversation holds at most REALTIME_MAX_CONVERSATION_MB (8): past it the oldest items are dropped with conversation.item.deleted (one connection held gigabytes before)', async () => {
    const rt = await openRealtime(t.wsUrl);
    // each item ~990,000 characters (~1.98 MB held), in one message under WS_MAX_MESSAGE_BYTES: four fit in 8 MB, the fifth and sixth drop the two oldest
    const parts = Array.from({ length: 10 }, () => ({ type: 'input_text', text: 'x'.repeat(99_000) }));
    for (let i = 0; i < 6; i++) {
      rt.send({ type: 'conversation.item.create', item: { id: `big_${i}`, type: 'message', role: 'user', content: parts } });
      await rt.waitFor((e) => e.type === 'conversation.item.done' && (e.item as { id: string }).id === `big_${i}`);
    }
    const deleted = rt.events.filter((e) => e.type === 'conversation.item.deleted').map((e) => e.item_id);
    assert.deepEqual(deleted, ['big_0', 'big_1']);
    // told before the item that made room is announced, which names a previous item that still exists
    const added = rt.events.find((e) => e.type === 'conversation.item.added' && (e.item as { id: string }).id === 'big_5')!;
    assert.equal(added.previous_item_id, 'big_4');
    assert.ok(rt.events.indexOf(added) > rt.events.findIndex((e) => e.type === 'conversation.item.deleted' && e.item_id === 'big_1'));
    rt.send({ type: 'conversation.item.retrieve', item_id: 'big_0', event_id: 'gone' });
    rt.send({ type: 'conversation.item.retrieve', item_id: 'big_2', event_id: 'kept' });
    const gone = await rt.waitFor((e) => e.type === 'error' && (e.error as { event_id: string }).event_id === 'gone');
    assert.equal((gone.error as { code: string }).code, 'item_not_found');
    await rt.waitFor((e) => e.type === 'conversation.item.retrieved' && (e.item as { id: string }).id === 'big_2');
    rt.ws.close();
  });
});
