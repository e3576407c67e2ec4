/**
 * Sessions in this process: an LRU (SESSION_MAX_SESSIONS) whose entries expire SESSION_TTL_SECONDS
 * after their last turn. Records live in a second LRU, bounded by count and by their total size
 * (RESPONSES_STORE_MAX_MB), since one record can be as large as a request body.
 */
import { LRUCache } from 'lru-cache';
import { scopedId } from '../tenancy.ts';
import type { SessionRef, SessionStore, Turn } from './types.ts';

export class MemorySessionStore implements SessionStore {
  readonly kind = 'memory' as const;
  private readonly sessions: LRUCache<string, Turn[]>;
  private readonly records: LRUCache<string, string>;

  constructor(private readonly options: { maxSessions: number; ttlSeconds: number; maxStoredTurns: number; maxRecordBytes?: number }) {
    this.sessions = new LRUCache({ max: options.maxSessions, ttl: options.ttlSeconds * 1000, ttlAutopurge: false });
    this.records = new LRUCache({
      max: options.maxSessions,
      ttl: options.ttlSeconds * 1000,
      ttlAutopurge: false,
      maxSize: options.maxRecordBytes ?? 64 * 1024 * 1024,
      sizeCalculation: (value) => Math.max(1, value.length * 2), // UTF-16 in memory
    });
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

  degraded(): boolean {
    return false;
  }

  problem(): string | null {
    return null;
  }

  async close(): Promise<void> {
    this.sessions.clear();
    this.records.clear();
  }

  async getRecord(key: string): Promise<string | null> {
    return this.records.get(key) ?? null;
  }

  async putRecord(key: string, value: string): Promise<void> {
    this.records.set(key, value); // a record larger than the whole budget is simply not kept
  }

  async deleteRecord(key: string): Promise<boolean> {
    return this.records.delete(key);
  }
}
