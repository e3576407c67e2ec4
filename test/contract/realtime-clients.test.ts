/**
 * Real OpenAI Realtime clients against a real service process on the tiny models, over TLS (the
 * `openai` SDK's realtime client always uses wss:): `OpenAIRealtimeWS` from `openai/realtime/ws`
 * and `RealtimeSession` from `@openai/agents-realtime` with its WebSocket transport pointed at our
 * URL, unchanged apart from the URL and the self-signed certificate's CA. SIGHUP re-reads the
 * certificate.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { OpenAIRealtimeWebSocket, RealtimeAgent, RealtimeSession, type TransportEvent } from '@openai/agents-realtime';
import OpenAI from 'openai';
import { OpenAIRealtimeWS } from 'openai/realtime/ws';
import WebSocket from 'ws';
import { decodeWithFfmpeg } from '../helpers/ffmpeg.ts';
import { tinyGemmaPath, tinyWhisperPath } from '../helpers/models.ts';
import { freePort, spawnService, type ServiceProcess } from '../helpers/process.ts';
import { speech24k } from '../helpers/realtime.ts';
import { closeSpeech } from '../helpers/speech.ts';

const KEY = 'realtime-client-test-key-1';
const REPLY = 'Hello from the tiny Gemma model.';
const TRANSCRIPT = /^(Hello from the tiny whisper model\.\s*)+$/;

/** A self-signed certificate for 127.0.0.1 (its own CA). */
function makeCert(dir: string, name: string): { cert: string; key: string; ca: Buffer } {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  return { cert, key, ca: fs.readFileSync(cert) };
}

function getTls(url: string, ca: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    // a new connection each time (no keep-alive pool): a certificate reload applies to new handshakes
    https.get(url, { ca, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject);
  });
}

async function waitReady(url: string, ca: Buffer): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if ((await getTls(`${url}/health/ready`, ca).catch(() => 0)) === 200) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('service not ready');
}

async function until<T>(find: () => T | undefined, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = find();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('OpenAI Realtime clients against the service (TLS)', () => {
  let dir: string;
  let service: ServiceProcess;
  let base: string;
  let tls: { cert: string; key: string; ca: Buffer };
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'realtime-tls-'));
    tls = makeCert(dir, 'first');
    const port = await freePort();
    service = spawnService(
      { GEMMA_MODEL: tinyGemmaPath(), LOCAL_WHISPER_MODEL: tinyWhisperPath(), STT_BACKEND: 'local', TTS_BACKEND: 'embedded', STT_PARTIAL_INTERVAL_MS: '0', API_KEY_ENABLED: 'true', API_KEYS: KEY, TLS_CERT_FILE: tls.cert, TLS_KEY_FILE: tls.key, LOG_LEVEL: 'info' },
      port,
    );
    base = `https://127.0.0.1:${port}`;
    await waitReady(base, tls.ca);
  });
  after(async () => {
    service?.child.kill('SIGTERM');
    await service?.exited;
    await closeSpeech();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('openai SDK (OpenAIRealtimeWS over wss:): a spoken turn gives the transcript, reply text and audio', async () => {
    const client = new OpenAI({ apiKey: KEY, baseURL: `${base}/v1` });
    const rt = new OpenAIRealtimeWS({ model: 'gemma-3', options: { ca: tls.ca } }, client);
    assert.equal(rt.url.protocol, 'wss:');
    const events: { type: string; [k: string]: unknown }[] = [];
    rt.on('event', (e) => events.push(e as unknown as { type: string }));
    await new Promise((resolve, reject) => {
      rt.socket.once('open', resolve);
      rt.socket.once('error', reject);
    });
    rt.send({ type: 'session.update', session: { type: 'realtime', output_modalities: ['audio'], audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, turn_detection: { type: 'server_vad', silence_duration_ms: 500 } } } } });
    const pcm = await speech24k([{ silence: 0.3 }, 'What is the weather like today?', { silence: 0.9 }]);
    for (let i = 0; i < pcm.length; i += 4800) rt.send({ type: 'input_audio_buffer.append', audio: Buffer.from(pcm.buffer, pcm.byteOffset + i * 2, Math.min(4800, pcm.length - i) * 2).toString('base64') });
    const done = await until(() => events.find((e) => e.type === 'response.done'));
    assert.equal((done.response as { status: string }).status, 'completed');
    assert.ok(!events.some((e) => e.type === 'error'), JSON.stringify(events.filter((e) => e.type === 'error')));
    assert.match(events.find((e) => e.type === 'conversation.item.input_audio_transcription.completed')!.transcript as string, TRANSCRIPT);
    assert.equal(events.find((e) => e.type === 'response.output_audio_transcript.done')!.transcript, REPLY);
    const audio = Buffer.concat(events.filter((e) => e.type === 'response.output_audio.delta').map((e) => Buffer.from(e.delta as string, 'base64')));
    const decoded = decodeWithFfmpeg(audio, 24000);
    assert.ok(decoded.seconds > 1 && decoded.rms > 0.02);
    rt.close();
  });

  it('@openai/agents-realtime RealtimeSession: a typed turn and a spoken turn land in its history', async () => {
    const agent = new RealtimeAgent({ name: 'Local assistant', instructions: 'Be brief.' });
    const transport = new OpenAIRealtimeWebSocket({
      url: `${base.replace('https:', 'wss:')}/v1/realtime?model=gemma-3`,
      // the transport's own socket, given the self-signed CA (a trusted certificate needs no createWebSocket)
      createWebSocket: async ({ url, apiKey }) => new WebSocket(url, { headers: { Authorization: `Bearer ${apiKey}` }, ca: tls.ca }) as never,
    });
    const session = new RealtimeSession(agent, { transport, model: 'gemma-3', config: { audio: { input: { turnDetection: { type: 'server_vad' } } } } });
    const raw: TransportEvent[] = [];
    const errors: unknown[] = [];
    session.on('transport_event', (e) => raw.push(e));
    session.on('error', (e) => errors.push(e.error));
    await session.connect({ apiKey: KEY });
    const dones = () => raw.filter((e) => e.type === 'response.done');
    session.sendMessage('Hello there!');
    await until(() => (dones().length >= 1 ? true : undefined));
    const assistantText = () =>
      session.history
        .filter((i) => i.type === 'message' && i.role === 'assistant')
        .map((i) => (i as { content: { transcript?: string | null; text?: string }[] }).content.map((c) => c.transcript ?? c.text ?? '').join(''));
    assert.deepEqual(await until(() => (assistantText().length === 1 && assistantText()[0] ? assistantText() : undefined)), [REPLY]);
    const pcm = await speech24k([{ silence: 0.3 }, 'What is the weather like today?', { silence: 0.9 }]);
    for (let i = 0; i < pcm.length; i += 4800) session.sendAudio(pcm.slice(i, i + 4800).buffer);
    await until(() => (dones().length >= 2 ? true : undefined));
    const userTranscripts = await until(() => {
      const spoken = session.history.filter((i) => i.type === 'message' && i.role === 'user').flatMap((i) => (i as { content: { type: string; transcript?: string | null }[] }).content.filter((c) => c.type === 'input_audio').map((c) => c.transcript));
      return spoken.length === 1 && spoken[0] ? spoken : undefined;
    });
    assert.match(userTranscripts[0]!, TRANSCRIPT);
    assert.deepEqual(errors, []);
    session.close();
  });

  it('TLS: SIGHUP re-reads the certificate (new connections get the new one)', async () => {
    const next = makeCert(dir, 'second');
    fs.copyFileSync(next.cert, tls.cert);
    fs.copyFileSync(next.key, tls.key);
    service.child.kill('SIGHUP');
    await until(() => (service.output().includes('TLS certificate reloaded') ? true : undefined), 10_000);
    assert.equal(await getTls(`${base}/health`, next.ca), 200);
    await assert.rejects(getTls(`${base}/health`, tls.ca));
  });
});
