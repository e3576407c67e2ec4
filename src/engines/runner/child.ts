/**
 * The child side of a model runner (forked by supervisor.ts): holds one engine and serves its
 * requests over the IPC channel (protocol.ts). Each runner entry file (llm-runner.ts,
 * stt-runner.ts) calls `serveRunner` with how to load its engine and run one request. A native
 * fault here ends this process only; the gateway notices and restarts it. When the gateway goes
 * away (even kill -9) the channel disconnects and this exits: no orphan runner.
 */
import { pino, type Logger } from 'pino';
import type { EngineState } from '../types.ts';
import { toWire, type FromRunner, type ToRunner } from './protocol.ts';

export interface RunnerHandlers<Load, Request, Event> {
  /** Loads the model; the engine's state after loading (a clean failure is a state, not a throw). */
  load(options: Load, logger: Logger): Promise<EngineState>;
  run(request: Request, signal: AbortSignal): AsyncIterable<Event>;
  /** Puts a request sent in parts (its bulk data in `part` messages) back together. */
  assemble?(request: Request, parts: Float32Array[]): Request;
  close(): Promise<void>;
}

export function serveRunner<Load, Request, Event>(name: string, handlers: RunnerHandlers<Load, Request, Event>): void {
  if (!process.send) {
    process.stderr.write(`${name}: must be started by the gateway (child_process.fork)\n`);
    process.exit(2);
  }
  const send = (message: FromRunner<Event>) => {
    // the channel may already be gone (the gateway died): nothing left to tell
    if (process.connected) process.send!(message);
  };
  // the parent is gone (closed channel, also when it was kill -9'd): no orphan runner
  process.on('disconnect', () => process.exit(0));
  // a terminal's Ctrl-C reaches the whole process group: the gateway decides when this one stops
  process.on('SIGINT', () => undefined);

  const running = new Map<number, AbortController>();
  /** Requests whose parts are still arriving. */
  const arriving = new Map<number, { request: Request; expected: number; parts: Float32Array[] }>();

  async function run(id: number, request: Request): Promise<void> {
    const abort = new AbortController();
    running.set(id, abort);
    try {
      for await (const event of handlers.run(request, abort.signal)) {
        if (abort.signal.aborted) break;
        send({ type: 'event', id, event });
      }
      if (abort.signal.aborted) send({ type: 'failed', id, error: { name: 'AbortError', message: 'request cancelled' } });
      else send({ type: 'end', id });
    } catch (error) {
      send({ type: 'failed', id, error: toWire(error) });
    } finally {
      running.delete(id);
    }
  }

  process.on('message', (message: ToRunner<Load, Request>) => {
    switch (message.type) {
      case 'load': {
        const stream = { write: (line: string) => send({ type: 'log', line }) };
        const logger = pino({ level: message.logLevel, base: undefined, timestamp: false }, stream);
        void handlers.load(message.options, logger).then(
          (state) => send({ type: 'loaded', state }),
          (error: Error) => send({ type: 'loaded', state: { status: 'error', detail: error.message } }),
        );
        break;
      }
      case 'start':
        if (message.parts && handlers.assemble) arriving.set(message.id, { request: message.request, expected: message.parts, parts: [] });
        else void run(message.id, message.request);
        break;
      case 'part': {
        const pending = arriving.get(message.id);
        if (!pending) break; // cancelled while arriving
        pending.parts.push(message.data);
        if (pending.parts.length < pending.expected) break;
        arriving.delete(message.id);
        void run(message.id, handlers.assemble!(pending.request, pending.parts));
        break;
      }
      case 'cancel':
        if (arriving.delete(message.id)) send({ type: 'failed', id: message.id, error: { name: 'AbortError', message: 'request cancelled' } });
        running.get(message.id)?.abort(new DOMException('cancelled by the gateway', 'AbortError'));
        break;
      case 'ping':
        send({ type: 'pong', seq: message.seq });
        break;
      case 'close':
        for (const abort of running.values()) abort.abort(new DOMException('runner closing', 'AbortError'));
        void handlers.close().finally(() => process.exit(0));
        break;
    }
  });
}
