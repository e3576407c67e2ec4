/**
 * Bounded admission: up to `limit` holders at once, up to `queueSize` waiting in FIFO order;
 * beyond that the caller gets a 429 envelope with Retry-After. Waiters leave the queue when their
 * request is aborted.
 */
import { ApiError } from '../errors.ts';

export class Admission {
  private active = 0;
  private readonly waiting: { grant: () => void; signal: AbortSignal; onAbort: () => void }[] = [];

  constructor(
    private readonly limit: number,
    private readonly queueSize: number,
    private readonly what: string,
    private readonly onChange?: (active: number, queued: number) => void,
  ) {}

  /** Resolves with a release function once admitted. */
  async acquire(signal: AbortSignal): Promise<() => void> {
    signal.throwIfAborted();
    if (this.active < this.limit) {
      this.active++;
      this.onChange?.(this.active, this.waiting.length);
      return this.releaser();
    }
    if (this.waiting.length >= this.queueSize) {
      throw new ApiError(429, 'rate_limit_error', `The ${this.what} queue is full (${this.limit} running, ${this.queueSize} waiting). Retry shortly.`, {
        code: 'queue_full',
        headers: { 'Retry-After': '1' },
      });
    }
    await new Promise<void>((resolve, reject) => {
      const entry = {
        signal,
        grant: () => {
          signal.removeEventListener('abort', entry.onAbort);
          resolve();
        },
        onAbort: () => {
          this.waiting.splice(this.waiting.indexOf(entry), 1);
          this.onChange?.(this.active, this.waiting.length);
          reject(signal.reason);
        },
      };
      this.waiting.push(entry);
      signal.addEventListener('abort', entry.onAbort, { once: true });
      this.onChange?.(this.active, this.waiting.length);
    });
    return this.releaser();
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next.grant(); // the slot passes straight to the next waiter
      else this.active--;
      this.onChange?.(this.active, this.waiting.length);
    };
  }
}
