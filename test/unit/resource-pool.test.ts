import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ResourcePool } from '../../src/util/resource-pool.ts';

describe('ResourcePool', () => {
  it('hands out free resources, then serves waiters first come, first served', async () => {
    const pool = new ResourcePool<string>();
    pool.release('a');
    const never = new AbortController().signal;
    assert.equal(await pool.acquire(never), 'a');
    const order: string[] = [];
    const first = pool.acquire(never).then((r) => order.push(`first:${r}`));
    const second = pool.acquire(never).then((r) => order.push(`second:${r}`));
    assert.equal(pool.queued, 2);
    pool.release('a');
    pool.release('b');
    await Promise.all([first, second]);
    assert.deepEqual(order, ['first:a', 'second:b']);
    assert.equal(pool.queued, 0);
  });

  it('an aborted waiter leaves the queue with its reason, and the next release goes to the one behind it', async () => {
    const pool = new ResourcePool<number>();
    const leaving = new AbortController();
    const gone = pool.acquire(leaving.signal);
    const staying = pool.acquire(new AbortController().signal);
    leaving.abort(new Error('client left'));
    await assert.rejects(gone, /client left/);
    assert.equal(pool.queued, 1);
    pool.release(7);
    assert.equal(await staying, 7);
  });

  it('refuses at once when already aborted, and a removed resource is not handed out', async () => {
    const pool = new ResourcePool<number>();
    const aborted = new AbortController();
    aborted.abort(new Error('already gone'));
    await assert.rejects(pool.acquire(aborted.signal), /already gone/);
    pool.release(1);
    pool.release(2);
    pool.remove(2);
    const signal = new AbortController().signal;
    assert.equal(await pool.acquire(signal), 1);
    let granted = false;
    void pool.acquire(signal).then(() => (granted = true));
    await new Promise((r) => setImmediate(r));
    assert.equal(granted, false, 'nothing free: the caller waits');
  });
});
