/**
 * Limits on WebSockets: how many one client may hold open at once (WS_MAX_STREAMS_PER_KEY, counted
 * per API key or client address on this replica) and how fast one socket may send
 * (WS_MAX_MESSAGES_PER_SECOND). A fast sender is paced, not cut off: reading from its socket
 * pauses until its budget refills, so TCP slows it down and every message it sent is still
 * handled; only a flood that pausing cannot hold back is closed.
 */
import type { FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { ApiError } from '../../errors.ts';
import { clientIdentity } from '../protection.ts';

/** Once paused, reading resumes when this share of a second's budget has refilled (fewer timers than one per message). */
const RESUME_SHARE = 0.1;

export class SocketLimits {
  private readonly open = new Map<string, number>();

  constructor(
    private readonly maxPerClient: number,
    private readonly messagesPerSecond: number,
    private readonly keyHeader: string,
  ) {}

  /**
   * On a handshake, after authentication: refuses (429) a client that already holds its maximum
   * of sockets, else counts this connection until it closes (whatever the handshake's outcome).
   */
  admit(request: FastifyRequest): void {
    if (this.maxPerClient <= 0) return;
    const who = clientIdentity(request, this.keyHeader);
    const count = this.open.get(who) ?? 0;
    if (count >= this.maxPerClient) {
      throw new ApiError(429, 'rate_limit_error', `Too many WebSockets open at once: at most ${this.maxPerClient} per API key (WS_MAX_STREAMS_PER_KEY). Close one and retry.`, {
        code: 'too_many_streams',
        headers: { 'Retry-After': '1' },
      });
    }
    this.open.set(who, count + 1);
    request.raw.socket.once('close', () => {
      const left = (this.open.get(who) ?? 1) - 1;
      if (left > 0) this.open.set(who, left);
      else this.open.delete(who);
    });
  }

  /**
   * Paces an accepted socket's incoming messages (a token bucket holding one second's budget).
   * Pausing stops reading from TCP, but frames already read are still delivered; a sender whose
   * debt passes a further second's budget anyway (a burst of tiny frames) is told so and closed
   * with 1008.
   */
  pace(socket: WebSocket, request: FastifyRequest): void {
    const rate = this.messagesPerSecond;
    if (rate <= 0) return;
    let tokens = rate;
    let last = performance.now();
    let timer: NodeJS.Timeout | undefined;
    socket.on('message', () => {
      if (socket.readyState !== socket.OPEN) return; // closing: read on, so the client's close frame arrives
      const now = performance.now();
      tokens = Math.min(rate, tokens + ((now - last) * rate) / 1000) - 1;
      last = now;
      if (tokens < -rate) {
        const error = new ApiError(429, 'rate_limit_error', `Too many messages: at most ${rate} per second (WS_MAX_MESSAGES_PER_SECOND).`, { code: 'rate_limited' });
        socket.send(JSON.stringify({ type: 'error', error: error.envelope(request.id).error, request_id: request.id }));
        socket.close(1008, 'message rate exceeded');
        request.log.info({ messages_per_second: rate }, 'websocket closed: message rate exceeded');
      } else if (tokens < 0 && timer === undefined) {
        socket.pause();
        timer = setTimeout(
          () => {
            timer = undefined;
            socket.resume();
          },
          ((-tokens + rate * RESUME_SHARE) * 1000) / rate,
        );
      }
    });
    socket.once('close', () => clearTimeout(timer));
  }
}
