/**
 * Sessions in Redis, shared by every replica: one list per session of JSON turns, at
 * `<prefix><id>` with keys off and `<prefix><tenant>/<id>` with keys on (the owner's space).
 * An append is one MULTI (RPUSH all turns, LTRIM to SESSION_MAX_STORED_TURNS, EXPIRE), so two
 * replicas appending to one conversation never lose a turn. Commands fail fast while Redis is
 * unreachable (no offline queue, bounded command time): the caller answers 503, or falls back to
 * memory when SESSION_REDIS_FALLBACK is set. Records (stored responses) are plain strings under
 * their own prefix, SET with the same TTL. Every call is timed in
 * dependency_duration_seconds{dependency="redis"}.
 */
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { ApiError } from '../errors.ts';
import type { Metrics } from '../observability/metrics.ts';
import { outcomeOf } from '../observability/metrics.ts';
import { scopedId } from '../tenancy.ts';
import type { SessionRef, SessionStore, Turn } from './types.ts';

const COMMAND_TIMEOUT_MS = 2000;

export class RedisSessionStore implements SessionStore {
  readonly kind = 'redis' as const;
  private readonly redis: Redis;
  private lastError: string | null = null;

  constructor(
    url: string,
    private readonly options: { ttlSeconds: number; maxStoredTurns: number; prefix?: string; recordPrefix?: string },
    private readonly metrics: Metrics,
    private readonly logger: Logger,
  ) {
    this.redis = new Redis(url, {
      lazyConnect: false,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: COMMAND_TIMEOUT_MS,
      connectTimeout: COMMAND_TIMEOUT_MS,
      retryStrategy: (times) => Math.min(times * 200, 2000), // keep reconnecting in the background
    });
    this.redis.on('error', (error: Error) => {
      if (this.lastError !== error.message) this.logger.warn({ reason: error.message }, 'redis unavailable');
      this.lastError = error.message;
    });
    this.redis.on('ready', () => {
      if (this.lastError) this.logger.info('redis reachable again');
      this.lastError = null;
    });
  }

  private key(session: SessionRef): string {
    return `${this.options.prefix ?? 'gemma-3-api:session:'}${scopedId(session.owner, session.id)}`;
  }

  private async timed<T>(operation: string, run: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      const result = await run();
      this.metrics.dependencyDuration.observe({ dependency: 'redis', operation, outcome: 'success' }, (performance.now() - started) / 1000);
      return result;
    } catch (error) {
      this.metrics.dependencyDuration.observe({ dependency: 'redis', operation, outcome: outcomeOf(error) }, (performance.now() - started) / 1000);
      throw new ApiError(503, 'server_error', `The session store (Redis) is unavailable: ${(error as Error).message}. Retry shortly.`, {
        code: 'session_store_unavailable',
        headers: { 'Retry-After': '1' },
        cause: error,
      });
    }
  }

  async history(session: SessionRef): Promise<Turn[]> {
    const raw = await this.timed('history', () => this.redis.lrange(this.key(session), 0, -1));
    return raw.map((item) => JSON.parse(item) as Turn);
  }

  async append(session: SessionRef, turns: Turn[]): Promise<void> {
    if (turns.length === 0) return;
    const key = this.key(session);
    await this.timed('append', async () => {
      const results = await this.redis
        .multi()
        .rpush(key, ...turns.map((t) => JSON.stringify(t)))
        .ltrim(key, -this.options.maxStoredTurns, -1)
        .expire(key, this.options.ttlSeconds)
        .exec();
      const failed = results?.find(([error]) => error);
      if (!results || failed) throw failed?.[0] ?? new Error('transaction aborted');
    });
  }

  async delete(session: SessionRef): Promise<boolean> {
    return (await this.timed('delete', () => this.redis.del(this.key(session)))) > 0;
  }

  private recordKey(key: string): string {
    return `${this.options.recordPrefix ?? 'gemma-3-api:record:'}${key}`;
  }

  async getRecord(key: string): Promise<string | null> {
    return this.timed('record_get', () => this.redis.get(this.recordKey(key)));
  }

  async putRecord(key: string, value: string): Promise<void> {
    await this.timed('record_put', () => this.redis.set(this.recordKey(key), value, 'EX', this.options.ttlSeconds));
  }

  async deleteRecord(key: string): Promise<boolean> {
    return (await this.timed('record_delete', () => this.redis.del(this.recordKey(key)))) > 0;
  }

  degraded(): boolean {
    return false;
  }

  problem(): string | null {
    return this.redis.status === 'ready' ? null : `redis ${this.redis.status}${this.lastError ? `: ${this.lastError}` : ''}`;
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
