/** WebSocket test clients: paced PCM streaming like a live microphone, and an event log with arrival times. */
import WebSocket from 'ws';

export type WsEvent = { type: string; at: number; [key: string]: unknown };

/** Streams PCM16 in 20 ms frames, paced like a live microphone (speedup > 1 sends faster). */
export async function streamPcm(ws: WebSocket, pcm: Int16Array, rate: number, speedup = 1): Promise<void> {
  const frame = Math.round(rate / 50);
  const started = performance.now();
  for (let i = 0, n = 0; i < pcm.length; i += frame, n++) {
    ws.send(Buffer.from(pcm.buffer, pcm.byteOffset + i * 2, Math.min(frame, pcm.length - i) * 2));
    const due = started + ((n + 1) * 20) / speedup;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
}

export function eventLog(ws: WebSocket) {
  const events: WsEvent[] = [];
  const audio: { at: number; bytes: Buffer }[] = [];
  ws.on('message', (data, isBinary) => {
    if (isBinary) audio.push({ at: performance.now(), bytes: data as Buffer });
    else events.push({ ...(JSON.parse(data.toString()) as { type: string }), at: performance.now() });
  });
  const waitFor = (test: (e: WsEvent) => boolean, timeoutMs = 15_000) => waitForEvent(events, test, timeoutMs);
  return { events, audio, waitFor };
}

/** The first event in `events` (a log that grows as messages arrive) that passes `test`; throws after `timeoutMs`. */
export async function waitForEvent<E extends { type: string }>(events: E[], test: (e: E) => boolean, timeoutMs: number): Promise<E> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = events.find(test);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`timed out; events: ${events.map((e) => e.type).join(', ')}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A handshake's status: 101 when it opened (then closed at once), else the refusal's HTTP status. */
export function handshakeStatus(url: string, options: WebSocket.ClientOptions = {}, protocols: string[] = []): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, protocols, options);
    ws.once('open', () => {
      ws.close();
      resolve(101);
    });
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once('error', () => undefined);
  });
}
