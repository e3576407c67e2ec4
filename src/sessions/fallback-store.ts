/**
 * Redis first; while Redis is unreachable, process memory (SESSION_REDIS_FALLBACK=true). Turns
 * written during an outage stay in this replica only — `degraded()` says so, and the dialogue
 * reports it — and are not copied back to Redis when it returns.
 */
import type { Logger } from 'pino';
import { ApiError } from '../errors.ts';
import type { SessionRef, SessionStore, Turn } from './types.ts';

export class FallbackSessionStore implements SessionStore {
  readonly kind = 'redis' as const;
  private usingFallback = false;

  constructor(
    private readonly primary: SessionStore,
    private readonly fallback: SessionStore,
    private readonly logger: Logger,
  ) {}

  /** Whether the last call was served from memory. */
  degraded(): boolean {
    return this.usingFallback;
  }

  private async either<T>(run: (store: SessionStore) => Promise<T>): Promise<T> {
    try {
      const result = await run(this.primary);
      this.usingFallback = false;
      return result;
    } catch (error) {
      if (!(error instanceof ApiError) || error.code !== 'session_store_unavailable') throw error;
      if (!this.usingFallback) this.logger.warn({ reason: error.message }, 'redis unavailable: sessions fall back to process memory');
      this.usingFallback = true;
      return run(this.fallback);
    }
  }

  history(session: SessionRef): Promise<Turn[]> {
    return this.either((s) => s.history(session));
  }

  append(session: SessionRef, turns: Turn[]): Promise<void> {
    return this.either((s) => s.append(session, turns));
  }

  delete(session: SessionRef): Promise<boolean> {
    return this.either((s) => s.delete(session));
  }

  getRecord(key: string): Promise<string | null> {
    return this.either((s) => s.getRecord(key));
  }

  putRecord(key: string, value: string): Promise<void> {
    return this.either((s) => s.putRecord(key, value));
  }

  deleteRecord(key: string): Promise<boolean> {
    return this.either((s) => s.deleteRecord(key));
  }

  problem(): string | null {
    return null; // serving either way
  }

  async close(): Promise<void> {
    await Promise.all([this.primary.close(), this.fallback.close()]);
  }
}
