/** The stored-responses layer over the session store: ownership, the history budget, input-item pages, memory bound. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ResponseObject, StoredItem } from '../../src/http/openai/responses-schema.ts';
import { pageOfItems, ResponseStore } from '../../src/services/responses.ts';
import { MemorySessionStore } from '../../src/sessions/memory-store.ts';

const response = (id: string) => ({ id }) as ResponseObject;
const item = (n: number): StoredItem => ({ type: 'message', id: `msg_${n}`, status: 'completed', role: 'user', content: [{ type: 'input_text', text: `item ${n}` }] });

describe('stored responses', () => {
  it('belong to their owner: another owner, an unknown or malformed id all get the same 404', async () => {
    const store = new ResponseStore(new MemorySessionStore({ maxSessions: 10, ttlSeconds: 60, maxStoredTurns: 10 }), { SESSION_HISTORY_TURNS: 20, SESSION_HISTORY_TOKENS: 2048 });
    await store.put({ owner: 'digest-a', response: response('resp_abc'), items: [], history: [] });
    assert.equal((await store.get('resp_abc', 'digest-a')).response.id, 'resp_abc');
    for (const [id, owner] of [
      ['resp_abc', 'digest-b'],
      ['resp_abc', null],
      ['resp_nope', 'digest-a'],
      ['../resp_abc', 'digest-a'],
    ] as const) {
      await assert.rejects(store.get(id, owner), (e: { statusCode: number; code: string }) => e.statusCode === 404 && e.code === 'response_not_found');
    }
    await assert.rejects(store.delete('resp_abc', 'digest-b'), { statusCode: 404 });
    await store.delete('resp_abc', 'digest-a');
    await assert.rejects(store.get('resp_abc', 'digest-a'), { statusCode: 404 });
  });

  it('a continuation keeps system messages once and the latest turns within SESSION_HISTORY_TURNS / _TOKENS', () => {
    const store = new ResponseStore(new MemorySessionStore({ maxSessions: 10, ttlSeconds: 60, maxStoredTurns: 10 }), { SESSION_HISTORY_TURNS: 3, SESSION_HISTORY_TOKENS: 100 });
    const history = [
      { role: 'system' as const, content: 'Be brief.' },
      { role: 'user' as const, content: 'one' },
      { role: 'assistant' as const, content: 'reply one' },
      { role: 'system' as const, content: 'Be brief.' },
      { role: 'user' as const, content: 'two' },
      { role: 'assistant' as const, content: 'reply two' },
    ];
    // 3 turns at most, starting at a user turn: only the second exchange
    assert.deepEqual(store.context(history), [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'two' },
      { role: 'assistant', content: 'reply two' },
    ]);
    const tight = new ResponseStore(new MemorySessionStore({ maxSessions: 10, ttlSeconds: 60, maxStoredTurns: 10 }), { SESSION_HISTORY_TURNS: 20, SESSION_HISTORY_TOKENS: 10 });
    const long = [
      { role: 'user' as const, content: 'x'.repeat(400) },
      { role: 'assistant' as const, content: 'y'.repeat(400) },
      { role: 'user' as const, content: 'short' },
      { role: 'assistant' as const, content: 'ok' },
    ];
    assert.deepEqual(tight.context(long), long.slice(2), 'older turns beyond the token budget are left out');
  });

  it('input items page like OpenAI: desc by default, after/before cursors, has_more', () => {
    const items = [1, 2, 3, 4, 5].map(item);
    const ids = (page: { data: StoredItem[] }) => page.data.map((i) => i.id);
    const first = pageOfItems(items, { limit: 2, order: 'desc' });
    assert.deepEqual(ids(first), ['msg_5', 'msg_4']);
    assert.deepEqual([first.first_id, first.last_id, first.has_more], ['msg_5', 'msg_4', true]);
    assert.deepEqual(ids(pageOfItems(items, { limit: 2, order: 'desc', after: 'msg_4' })), ['msg_3', 'msg_2']);
    const last = pageOfItems(items, { limit: 2, order: 'asc', after: 'msg_3' });
    assert.deepEqual([ids(last), last.has_more], [['msg_4', 'msg_5'], false]);
    assert.deepEqual(ids(pageOfItems(items, { limit: 2, order: 'asc', before: 'msg_4' })), ['msg_2', 'msg_3'], 'the page just before the cursor');
    assert.deepEqual(ids(pageOfItems(items, { limit: 5, order: 'asc', after: 'msg_1', before: 'msg_4' })), ['msg_2', 'msg_3']);
    const empty = pageOfItems([], { limit: 20, order: 'desc' });
    assert.deepEqual([empty.data, empty.first_id, empty.last_id, empty.has_more], [[], null, null, false]);
    assert.throws(() => pageOfItems(items, { limit: 2, order: 'asc', after: 'msg_9' }), { statusCode: 400, param: 'after' });
  });

  it('in process memory, records are bounded by size (RESPONSES_STORE_MAX_MB), oldest dropped first', async () => {
    const memory = new MemorySessionStore({ maxSessions: 100, ttlSeconds: 60, maxStoredTurns: 10, maxRecordBytes: 10_000 });
    for (let i = 0; i < 5; i++) await memory.putRecord(`r${i}`, 'x'.repeat(2_000)); // 4 kB each in memory
    assert.equal(await memory.getRecord('r0'), null);
    assert.equal(await memory.getRecord('r2'), null);
    assert.equal((await memory.getRecord('r4'))?.length, 2_000);
    await memory.putRecord('huge', 'x'.repeat(20_000));
    assert.equal(await memory.getRecord('huge'), null, 'a record larger than the whole budget is not kept');
    assert.equal(await memory.deleteRecord('r4'), true);
    assert.equal(await memory.deleteRecord('r4'), false);
    // records and session lists are separate namespaces
    await memory.append({ owner: undefined, id: 'same' }, [{ role: 'user', content: 'hi', at: new Date().toISOString() }]);
    await memory.putRecord('same', '{}');
    assert.equal((await memory.history({ owner: undefined, id: 'same' })).length, 1);
  });
});
