/** Builds the session store from the configuration: Redis when REDIS_URL is set, else process memory. */
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import type { Metrics } from '../observability/metrics.ts';
import { FallbackSessionStore } from './fallback-store.ts';
import { MemorySessionStore } from './memory-store.ts';
import { RedisSessionStore } from './redis-store.ts';
import type { SessionStore, Turn } from './types.ts';

export function createSessionStore(config: Config, metrics: Metrics, logger: Logger): SessionStore {
  const memory = () => new MemorySessionStore({ maxSessions: config.SESSION_MAX_SESSIONS, ttlSeconds: config.SESSION_TTL_SECONDS, maxStoredTurns: config.SESSION_MAX_STORED_TURNS, maxRecordBytes: config.RESPONSES_STORE_MAX_MB * 1024 * 1024 });
  if (!config.REDIS_URL) return memory();
  const redis = new RedisSessionStore(config.REDIS_URL, { ttlSeconds: config.SESSION_TTL_SECONDS, maxStoredTurns: config.SESSION_MAX_STORED_TURNS }, metrics, logger.child({ dependency: 'redis' }));
  return config.SESSION_REDIS_FALLBACK ? new FallbackSessionStore(redis, memory(), logger) : redis;
}

/** The most recent turns within both budgets, starting at a user turn (as chat templates expect). */
export function historyWindow<T extends Pick<Turn, 'content'> & { role: string }>(turns: T[], maxTurns: number, maxTokens: number): T[] {
  const kept: T[] = [];
  let tokens = 0;
  for (let i = turns.length - 1; i >= 0 && kept.length < maxTurns; i--) {
    const cost = Math.ceil(turns[i]!.content.length / 4);
    if (tokens + cost > maxTokens) break;
    tokens += cost;
    kept.unshift(turns[i]!);
  }
  while (kept.length > 0 && kept[0]!.role !== 'user') kept.shift();
  return kept;
}
