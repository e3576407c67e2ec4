/**
 * A pool of interchangeable resources (llama.cpp context sequences, voice worker threads): a
 * caller takes a free one or waits in FIFO order; a waiter whose request is aborted leaves the
 * queue at once (its signal's reason is thrown). Unbounded waiting: the services' Admission
 * (util/admission.ts) bounds how many requests reach an engine at all.
 */
export class ResourcePool<T> {
  private readonly free: T[] = [];
  private readonly waiting: ((item: T) => void)[] = [];

  /** Hands `item` to the longest waiter, else keeps it free (a new resource, or one given back). */
  release(item: T): void {
    const next = this.waiting.shift();
    if (next) next(item);
    else this.free.push(item);
  }

  /** Forgets a free `item` (a resource that is gone); one in use is simply never released. */
  remove(item: T): void {
    const at = this.free.indexOf(item);
    if (at >= 0) this.free.splice(at, 1);
  }

  acquire(signal: AbortSignal): Promise<T> {
    if (signal.aborted) return Promise.reject(signal.reason as Error);
    // the most recently released first: its memory (caches, pages) is the warmest
    if (this.free.length > 0) return Promise.resolve(this.free.pop()!);
    return new Promise<T>((resolve, reject) => {
      const grant = (item: T) => {
        signal.removeEventListener('abort', onAbort);
        resolve(item);
      };
      const onAbort = () => {
        this.waiting.splice(this.waiting.indexOf(grant), 1);
        reject(signal.reason as Error);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(grant);
    });
  }

  /** Waiters now (for tests and gauges). */
  get queued(): number {
    return this.waiting.length;
  }

  /** Forgets every free resource (on close); waiters keep waiting for ones released later. */
  clear(): void {
    this.free.length = 0;
  }
}
