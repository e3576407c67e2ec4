/** Dialogue memory: one interface, an in-process store and a Redis store behind it. */
export interface Turn {
  role: 'user' | 'assistant';
  content: string;
  /** ISO timestamp. */
  at: string;
  /** The assistant was cut off (barge-in, disconnect): `content` is what was actually delivered. */
  interrupted?: boolean;
}

/**
 * A session: its id in its owner's space. The owner is the tenant of the API key that created it
 * (src/tenancy.ts; undefined with keys off), and part of where the session is stored, so another
 * key's `history`/`append`/`delete` of the same id reach a different (absent) session.
 */
export interface SessionRef {
  owner: string | undefined;
  id: string;
}

export interface SessionStore {
  readonly kind: 'memory' | 'redis';
  /** The stored turns, oldest first ([] for an unknown session). */
  history(session: SessionRef): Promise<Turn[]>;
  /** Appends turns atomically (a user turn and its reply land together) and refreshes the TTL. */
  append(session: SessionRef, turns: Turn[]): Promise<void>;
  /** true when the session existed. */
  delete(session: SessionRef): Promise<boolean>;
  /** For readiness: null when healthy, else why not. */
  problem(): string | null;
  /**
   * Whether the last call was served by a stand-in (process memory while Redis is unreachable,
   * SESSION_REDIS_FALLBACK) rather than where sessions are meant to live; the dialogue reports it.
   */
  degraded(): boolean;
  close(): Promise<void>;
  // Records: one JSON string per key, kept apart from the session lists, expiring
  // SESSION_TTL_SECONDS after they were written (stored /v1/responses objects).
  /** The record, or null when unknown or expired. */
  getRecord(key: string): Promise<string | null>;
  /** Writes the record (replacing any) and starts its TTL. */
  putRecord(key: string, value: string): Promise<void>;
  /** true when the record existed. */
  deleteRecord(key: string): Promise<boolean>;
}

/** Letters, digits and `_ . : -`, starting with a letter, digit, `_` or `-` (so never `.` or `..`). */
export const SESSION_ID_PATTERN = /^[A-Za-z0-9_-][A-Za-z0-9_.:-]{0,127}$/;
