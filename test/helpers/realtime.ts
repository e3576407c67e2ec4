/** Helpers for /v1/realtime tests: 24 kHz speech, OpenAI's published server-event list, a raw client. */
import fs from 'node:fs';
import WebSocket from 'ws';
import { float32ToInt16, int16ToFloat32 } from '../../src/audio/pcm.ts';
import { resample } from '../../src/audio/resample.ts';
import { speech, type Part } from './speech.ts';
import { waitForEvent } from './ws.ts';

/** Generated speech as 24 kHz PCM16 (the Realtime API's `audio/pcm`). */
export async function speech24k(parts: Part[]): Promise<Int16Array> {
  return float32ToInt16(await resample(int16ToFloat32(await speech(parts)), 16000, 24000));
}

/**
 * The server event types OpenAI publishes, read from the `openai` SDK's type definitions (the
 * RealtimeServerEvent union of resources/realtime/realtime.d.ts, generated from OpenAI's spec).
 */
export function publishedServerEvents(): Set<string> {
  const dts = fs.readFileSync('node_modules/openai/resources/realtime/realtime.d.ts', 'utf8');
  const union = /export type RealtimeServerEvent = ([^;]+);/.exec(dts)![1]!.split('|').map((s) => s.trim().replace(/^RealtimeServerEvent\./, ''));
  return new Set(union.map((name) => /type: '([^']+)';/.exec(dts.slice(dts.search(new RegExp(`interface ${name} \\{`))))![1]!));
}

export type RtEvent = { type: string; at: number; [key: string]: unknown };

export async function openRealtime(wsUrl: string, options: WebSocket.ClientOptions & { protocols?: string[]; query?: string } = {}) {
  const ws = new WebSocket(`${wsUrl}/v1/realtime${options.query ?? ''}`, options.protocols ?? [], options);
  const events: RtEvent[] = [];
  ws.on('message', (data) => events.push({ ...(JSON.parse(data.toString()) as { type: string }), at: performance.now() }));
  const waitFor = (test: (e: RtEvent) => boolean, timeoutMs = 20_000) => waitForEvent(events, test, timeoutMs);
  const send = (event: object) => ws.send(JSON.stringify(event));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  await waitFor((e) => e.type === 'session.created');
  return { ws, events, waitFor, send };
}

/** Streams PCM16 as input_audio_buffer.append events in 20 ms chunks, paced (speedup > 1 sends faster). */
export async function appendPcm(send: (e: object) => void, pcm: Int16Array, rate: number, speedup = 2): Promise<void> {
  const frame = Math.round(rate / 50);
  const started = performance.now();
  for (let i = 0, n = 0; i < pcm.length; i += frame, n++) {
    const chunk = Buffer.from(pcm.buffer, pcm.byteOffset + i * 2, Math.min(frame, pcm.length - i) * 2);
    send({ type: 'input_audio_buffer.append', audio: chunk.toString('base64') });
    const wait = started + ((n + 1) * 20) / speedup - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
}
