/**
 * Graceful shutdown for WebSockets. Each socket registers how to finish the work it has already
 * accepted (speak the text already sent, transcribe or answer the turn in progress). On shutdown
 * every socket stops taking new work (one `shutting_down` error event tells the client), finishes
 * that work within the time given, and is closed with 1001 (going away).
 */
import type { WebSocket } from 'ws';
import { ApiError } from '../../errors.ts';
import type { JsonSocket } from './socket.ts';

/** How long a closed socket may take to answer our close frame before it is cut. */
const CLOSE_HANDSHAKE_MS = 2000;

export interface SocketGate {
  /** True while the socket takes new work; once shutting down, tells the client (once) and returns false. */
  accepting(): boolean;
}

interface Registered {
  out: JsonSocket;
  finish: () => Promise<void>;
  closing: boolean;
}

export class SocketDrain {
  private readonly sockets = new Map<WebSocket, Registered>();
  private draining = false;

  /** Registers an accepted socket and how it finishes its accepted work. */
  register(out: JsonSocket, finish: () => Promise<void>): SocketGate {
    const entry: Registered = { out, finish, closing: false };
    let told = false;
    const gate: SocketGate = {
      accepting: () => {
        if (!entry.closing) return true;
        if (!told) {
          told = true;
          out.error(ApiError.unavailable('The server is shutting down: work sent before this is finished, then the socket closes (1001).', 'shutting_down'));
        }
        return false;
      },
    };
    if (this.draining) {
      entry.closing = true;
      gate.accepting();
      out.socket.close(1001, 'server shutting down');
      return gate;
    }
    this.sockets.set(out.socket, entry);
    out.socket.once('close', () => this.sockets.delete(out.socket));
    return gate;
  }

  /**
   * Closes at once (1008, after an `invalid_api_key` error event) every socket opened with a key
   * that `accepted` no longer accepts: a revoked key stops working at once, also on the sockets it
   * holds open (for hours, perhaps). Sockets opened without a key (keys off) are left alone.
   * Returns how many were closed.
   */
  revoke(accepted: (keyDigest: Buffer) => boolean): number {
    let closed = 0;
    for (const [socket, entry] of this.sockets) {
      const digest = entry.out.request.keyDigest;
      if (!digest || accepted(digest)) continue;
      entry.out.error(new ApiError(401, 'authentication_error', 'The API key of this connection has been revoked.', { code: 'invalid_api_key' }));
      void closeSocket(socket, 1008, 'api key revoked');
      this.sockets.delete(socket);
      closed++;
    }
    return closed;
  }

  /** Finishes every socket's accepted work (for at most `timeoutMs`), then closes it with 1001. */
  async closeAll(timeoutMs: number, others: Iterable<WebSocket> = []): Promise<void> {
    this.draining = true;
    const entries = [...this.sockets];
    for (const [, entry] of entries) entry.closing = true;
    await Promise.all(
      entries.map(async ([socket, entry]) => {
        let timer: NodeJS.Timeout | undefined;
        const timeUp = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
        await Promise.race([entry.finish().catch(() => undefined), timeUp]);
        clearTimeout(timer);
        await closeSocket(socket);
      }),
    );
    // sockets that never registered (refused, still setting up)
    await Promise.all([...others].map((socket) => closeSocket(socket)));
  }
}

/** Awaits a promise chain that may grow while it is awaited (a queue of turns), until it stops growing. */
export async function settled(current: () => Promise<unknown>): Promise<void> {
  for (;;) {
    const tail = current();
    await tail;
    if (tail === current()) return;
  }
}

/** Close (1001 unless told) and wait for the client's answer (bounded: a client that never answers is cut), so it sees a clean close. */
function closeSocket(socket: WebSocket, code = 1001, reason = 'server shutting down'): Promise<void> {
  if (socket.readyState === socket.CLOSED) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      socket.terminate();
      resolve();
    }, CLOSE_HANDSHAKE_MS);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    if (socket.readyState === socket.OPEN) socket.close(code, reason);
  });
}
