/**
 * Runs JSON schema → GBNF conversions in one worker thread (gbnf-worker.ts), one after another.
 * The worker starts with the first conversion; should it fail to start, that conversion runs on
 * the event loop instead (bounded by GRAMMAR_*, so still short) and the next one tries a new
 * worker; should it die, the conversions it held fail (400) and the next one starts a new worker.
 */
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type * as NodeLlamaCppModule from 'node-llama-cpp';
import { schemaToGbnf } from './gbnf-convert.ts';
import type { GbnfJob, GbnfReply } from './gbnf-worker.ts';

type Pending = { resolve: (grammar: string) => void; reject: (error: Error) => void };

export class GbnfBuilder {
  private worker: Promise<Worker> | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;

  constructor(
    private readonly lib: typeof NodeLlamaCppModule,
    private readonly logger: Logger,
  ) {}

  async build(schema: unknown): Promise<string> {
    let worker: Worker;
    try {
      worker = await this.ready();
    } catch (error) {
      this.logger.warn({ err: error }, 'grammar worker unavailable: converting this JSON schema on the event loop');
      return schemaToGbnf(this.lib.LlamaJsonSchemaGrammar, schema);
    }
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, schema } satisfies GbnfJob);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const worker = await this.worker?.catch(() => undefined);
    await worker?.terminate();
  }

  private ready(): Promise<Worker> {
    if (this.closed) return Promise.reject(new Error('closed'));
    if (!this.worker) {
      const worker = this.spawn(() => {
        if (this.worker === worker) this.worker = undefined; // the next conversion starts a new one
      });
      this.worker = worker;
    }
    return this.worker;
  }

  private spawn(onDeath: () => void): Promise<Worker> {
    // From source (tsx) the worker is TypeScript too: it registers tsx's loader before importing
    // it (as the espeak worker does). From dist/ it is plain JS.
    const fromSource = import.meta.url.endsWith('.ts');
    const worker = fromSource
      ? new Worker(`import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(new URL('./gbnf-worker.ts', import.meta.url).href)}); });`, { eval: true })
      : new Worker(new URL('./gbnf-worker.js', import.meta.url));
    worker.unref();
    const failed = (error: Error) => {
      onDeath();
      for (const p of this.pending.values()) p.reject(error);
      this.pending.clear();
    };
    return new Promise((resolve, reject) => {
      worker.on('message', (message: GbnfReply) => {
        if (message.type === 'ready') return resolve(worker);
        const p = this.pending.get(message.id);
        this.pending.delete(message.id);
        if (message.type === 'done') p?.resolve(message.grammar);
        else p?.reject(new Error(message.error));
      });
      worker.on('error', (error) => {
        if (!this.closed) this.logger.error({ err: error }, 'grammar worker failed');
        failed(error);
        reject(error);
      });
      worker.on('exit', (code) => {
        failed(new Error(`the grammar worker exited (code ${code})`));
        reject(new Error(`the grammar worker exited (code ${code})`));
      });
    });
  }
}
