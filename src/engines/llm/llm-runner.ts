/**
 * The LLM runner: a child process (forked by llama-runner.ts) that holds one llama.cpp model
 * through the same LlamaCppEngine the gateway uses inline — its sequence pool, grammar worker
 * thread and grammar cache included — and serves generations over the IPC channel
 * (runner-protocol.ts). A native fault here ends this process only; the gateway notices and
 * restarts it. When the gateway goes away (even kill -9) the channel disconnects and this exits.
 */
import { pino } from 'pino';
import { ApiError } from '../../errors.ts';
import { LlamaCppEngine } from './llama-cpp.ts';
import type { FromRunner, ToRunner, WireError } from './runner-protocol.ts';

if (!process.send) {
  process.stderr.write('llm-runner: must be started by the gateway (child_process.fork)\n');
  process.exit(2);
}

const send = (message: FromRunner) => {
  // the channel may already be gone (the gateway died): nothing left to tell
  if (process.connected) process.send!(message);
};
// the parent is gone (closed channel, also when it was kill -9'd): no orphan runner
process.on('disconnect', () => process.exit(0));
// a terminal's Ctrl-C reaches the whole process group: the gateway decides when this one stops
process.on('SIGINT', () => undefined);

let engine: LlamaCppEngine | undefined;
const running = new Map<number, AbortController>();

function wire(error: unknown): WireError {
  if (error instanceof ApiError) return { statusCode: error.statusCode, type: error.type, message: error.message, param: error.param, code: error.code, name: error.name };
  const e = error as { message?: string; name?: string } | null;
  return { message: e?.message ?? String(error), name: e?.name };
}

async function generate(id: number, input: Extract<ToRunner, { type: 'generate' }>['input'], params: Extract<ToRunner, { type: 'generate' }>['params']): Promise<void> {
  const abort = new AbortController();
  running.set(id, abort);
  try {
    if (!engine) throw ApiError.unavailable('LLM runner has no model loaded', 'engine_unavailable');
    for await (const event of engine.generate(input, params, abort.signal)) {
      if (abort.signal.aborted) break;
      if (event.type === 'delta') send({ type: 'delta', id, text: event.text });
      else send({ type: 'done', id, result: event.result });
    }
    if (abort.signal.aborted) send({ type: 'failed', id, error: { name: 'AbortError', message: 'generation cancelled' } });
  } catch (error) {
    send({ type: 'failed', id, error: wire(error) });
  } finally {
    running.delete(id);
  }
}

process.on('message', (message: ToRunner) => {
  switch (message.type) {
    case 'load': {
      const stream = { write: (line: string) => send({ type: 'log', line }) };
      const logger = pino({ level: message.logLevel, base: undefined, timestamp: false }, stream);
      engine = new LlamaCppEngine(message.options, logger);
      void engine.load().then(() => send({ type: 'loaded', state: engine!.state(), modelName: engine!.modelName }));
      break;
    }
    case 'generate':
      void generate(message.id, message.input, message.params);
      break;
    case 'cancel':
      running.get(message.id)?.abort(new DOMException('generation cancelled by the gateway', 'AbortError'));
      break;
    case 'close':
      for (const abort of running.values()) abort.abort(new DOMException('runner closing', 'AbortError'));
      void (engine?.close() ?? Promise.resolve()).finally(() => process.exit(0));
      break;
  }
});
