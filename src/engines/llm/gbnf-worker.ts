/**
 * Worker thread that turns `response_format` JSON schemas into GBNF text (gbnf-convert.ts), so the
 * conversion — pure JS, up to a few hundred ms for a schema at the GRAMMAR_* bounds on a busy
 * machine — never holds the event loop. Messages in: `{id, schema}`. Out: `{type:"ready"}` once,
 * then `{id, grammar}` or `{id, error}`.
 */
import { parentPort } from 'node:worker_threads';
import { LlamaJsonSchemaGrammar } from 'node-llama-cpp';
import { schemaToGbnf } from './gbnf-convert.ts';

export type GbnfJob = { id: number; schema: unknown };
export type GbnfReply = { type: 'ready' } | { type: 'done'; id: number; grammar: string } | { type: 'failed'; id: number; error: string };

const port = parentPort!;
port.on('message', ({ id, schema }: GbnfJob) => {
  try {
    port.postMessage({ type: 'done', id, grammar: schemaToGbnf(LlamaJsonSchemaGrammar, schema) } satisfies GbnfReply);
  } catch (error) {
    port.postMessage({ type: 'failed', id, error: error instanceof Error ? error.message : String(error) } satisfies GbnfReply);
  }
});
port.postMessage({ type: 'ready' } satisfies GbnfReply);
