/** Sessions in this process: an LRU (SESSION_MAX_SESSIONS) whose entries expire SESSION_TTL_SECONDS after their last turn. */
import { LRUCache } from 'lru-cache';
import type { SessionStore, Turn } from './types.ts';

export class MemorySessionStore implements SessionStore {
  readonly kind = 'memory' as const;
  private readonly sessions: LRUCache<string, Turn[]>;

  constructor(private readonly options: { maxSessions: number; ttlSeconds: number; maxStoredTurns: number }) {
    this.sessions = new LRUCache({ max: options.maxSessions, ttl: options.ttlSeconds * 1000, ttlAutopurge: false });
  }

  async history(sessionId: string): Promise<Turn[]> {
    return [...(this.sessions.get(sessionId) ?? [])];
  }

  async append(sessionId: string, turns: Turn[]): Promise<void> {
    const all = [...(this.sessions.get(sessionId) ?? []), ...turns];
    this.sessions.set(sessionId, all.slice(-this.options.maxStoredTurns)); // set() restarts the TTL
  }

  async delete(sessionId: string): Promise<boolean> {
    return this.sessions.delete(sessionId);
  }

  problem(): string | null {
    return null;
  }

  async close(): Promise<void> {
    this.sessions.clear();
  }
}
