/**
 * Redis killed (kill -9) and started again while dialogue turns keep coming: clear 503s
 * (`session_store_unavailable`, Retry-After) while it is down, never a 500 or a hang, and recovery
 * without restarting the service; the Redis-backed rate limiter keeps admitting meanwhile.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startApp, type TestApp } from '../helpers/app.ts';
import { tinyGemmaPath } from '../helpers/models.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';

type Phase = 'healthy' | 'outage' | 'recovering' | 'recovered';
interface Outcome {
  phase: Phase;
  status: number;
  code: string | null;
  degraded: boolean;
  ms: number;
  retryAfter: string | null;
}

describe('Redis killed and restarted under load', () => {
  let redis: TestRedis;
  let t: TestApp;
  before(async () => {
    redis = await startRedis();
    t = await startApp({ env: { REDIS_URL: redis.url, RATE_LIMIT_PER_MINUTE: '100000', GEMMA_MODEL: tinyGemmaPath(), ENABLE_LOCAL_WHISPER: 'false', LLM_PARALLEL: '2', LLM_QUEUE_SIZE: '16' } });
  });
  after(async () => {
    await t?.close();
    await redis?.stop();
  });

  it('503 session_store_unavailable while down, no 5xx otherwise, no hang; recovers by itself', async (ctx) => {
    // a Redis client without an error listener makes ioredis print "Unhandled error event" (found here)
    const printed: string[] = [];
    const consoleError = console.error;
    console.error = (...args: unknown[]) => void printed.push(args.map(String).join(' '));
    ctx.after(() => void (console.error = consoleError));
    let phase: Phase = 'healthy';
    const outcomes: Outcome[] = [];
    let running = true;
    const worker = async (w: number) => {
      for (let n = 0; running; n++) {
        const started = performance.now();
        const at = phase;
        const res = await fetch(`${t.url}/v1/dialogue`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ text: `Turn ${n}.`, session_id: `load-${w}`, response_modalities: ['text'] }),
          signal: AbortSignal.timeout(15_000),
        });
        const body = (await res.json()) as { error?: { code: string }; degraded?: { stage: string }[] };
        outcomes.push({ phase: at === phase ? at : 'recovering', status: res.status, code: body.error?.code ?? null, degraded: (body.degraded ?? []).some((d) => d.stage === 'session'), ms: performance.now() - started, retryAfter: res.headers.get('retry-after') });
        if (res.status !== 200) await new Promise((r) => setTimeout(r, 50));
      }
    };
    const workers = [0, 1, 2, 3].map(worker);
    const ready = async () => (await fetch(`${t.url}/health/ready`)).status;

    await new Promise((r) => setTimeout(r, 1500));
    phase = 'outage';
    await redis.kill();
    const downAt = performance.now();
    while ((await ready()) !== 503 && performance.now() - downAt < 10_000) await new Promise((r) => setTimeout(r, 50));
    assert.equal(await ready(), 503, 'readiness reports the outage');
    await new Promise((r) => setTimeout(r, 1500));

    phase = 'recovering';
    await redis.restart();
    const upAt = performance.now();
    while ((await ready()) !== 200 && performance.now() - upAt < 15_000) await new Promise((r) => setTimeout(r, 50));
    const recoveryMs = performance.now() - upAt;
    assert.equal(await ready(), 200, 'readiness recovers without a restart');
    // one clean turn marks the start of the recovered phase (the reconnect may land mid-turn)
    await new Promise((r) => setTimeout(r, 300));
    phase = 'recovered';
    await new Promise((r) => setTimeout(r, 1500));
    running = false;
    await Promise.all(workers);

    const of = (p: Phase) => outcomes.filter((o) => o.phase === p);
    const summary = Object.fromEntries(
      (['healthy', 'outage', 'recovering', 'recovered'] as const).map((p) => {
        const counts: Record<string, number> = {};
        for (const o of of(p)) {
          const key = `${o.status}${o.code ? ` ${o.code}` : ''}${o.degraded ? ' degraded' : ''}`;
          counts[key] = (counts[key] ?? 0) + 1;
        }
        return [p, counts];
      }),
    );
    process.stderr.write(`# redis restart: ${JSON.stringify({ ...summary, recovery_ms: Math.round(recoveryMs), slowest_ms: Math.round(Math.max(...outcomes.map((o) => o.ms))) })}\n`);

    assert.ok(of('healthy').length > 0 && of('healthy').every((o) => o.status === 200 && !o.degraded), 'all turns succeed before the outage');
    const outage = of('outage');
    assert.ok(outage.some((o) => o.status === 503), 'the outage shows as 503');
    for (const o of outage.filter((x) => x.status !== 200)) {
      assert.equal(o.status, 503);
      assert.equal(o.code, 'session_store_unavailable');
      assert.equal(o.retryAfter, '1');
    }
    assert.ok(outcomes.every((o) => o.status === 200 || o.status === 503), `only 200 and 503 (${outcomes.filter((o) => o.status !== 200 && o.status !== 503).map((o) => o.status).join(', ')})`);
    assert.ok(outcomes.every((o) => o.ms < 5000), 'no turn hangs (Redis commands are bounded)');
    assert.ok(of('recovered').length > 0 && of('recovered').every((o) => o.status === 200 && !o.degraded), 'all turns succeed after the restart');

    // the store works again: a conversation made now is kept (Redis restarted empty)
    const history = (await (await fetch(`${t.url}/v1/sessions/load-0`)).json()) as { turns: unknown[] };
    assert.ok(history.turns.length >= 2);
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    assert.match(metrics, /dependency_duration_seconds_count\{dependency="redis",operation="history",outcome="error"\} [1-9]/);
    assert.ok(!t.logs.some((l) => l.includes('"level":"error"')), 'nothing logged as a server error');
    assert.deepEqual(printed.filter((l) => /ioredis/i.test(l)), [], 'every Redis client handles its errors');
    assert.ok(t.logs.some((l) => l.includes('rate limiter: Redis unavailable')) && t.logs.some((l) => l.includes('redis unavailable')), 'both Redis clients log the outage');
  });
});
