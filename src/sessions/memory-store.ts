/** Sessions in this process: an LRU (SESSION_MAX_SESSIONS) whose entries expire SESSION_TTL_SECONDS after their last turn. */
import { LRUCache } from 'lru-cache';
import { scopedId } from '../tenancy.ts';
import type { SessionRef, SessionStore, Turn } from './types.ts';

export class MemorySessionStore implements SessionStore {
  readonly kind = 'memory' as const;
  private readonly sessions: LRUCache<string, Turn[]>;

  constructor(private readonly options: { maxSessions: number; ttlSeconds: number; maxStoredTurns: number }) {
    this.sessions = new LRUCache({ max: options.maxSessions, ttl: options.ttlSeconds * 1000, ttlAutopurge: false });
  }

  async history(session: SessionRef): Promise<Turn[]> {
    return [...(this.sessions.get(scopedId(session.owner, session.id)) ?? [])];
  }

  async append(session: SessionRef, turns: Turn[]): Promise<void> {
    const key = scopedId(session.owner, session.id);
    const all = [...(this.sessions.get(key) ?? []), ...turns];
    this.sessions.set(key, all.slice(-this.options.maxStoredTurns)); // set() restarts the TTL
  }

  async delete(session: SessionRef): Promise<boolean> {
    return this.sessions.delete(scopedId(session.owner, session.id));
  }

  problem(): string | null {
    return null;
  }

  async close(): Promise<void> {
    this.sessions.clear();
  }
}
