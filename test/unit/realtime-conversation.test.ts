/** The bounds of one /v1/realtime conversation: item count and bytes held, the oldest dropped first and told. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Conversation, type Item } from '../../src/realtime/conversation.ts';

const text = (id: string, chars: number): Item => ({ id, role: 'user', status: 'completed', content: [{ type: 'input_text', text: 'x'.repeat(chars) }] });

describe('realtime conversation bounds', () => {
  it('drops the oldest items past its bytes (text at two bytes a character, audio as held), never the one just added', () => {
    const dropped: string[] = [];
    const c = new Conversation(1000, (item) => dropped.push(item.id));
    c.insert(text('a', 200)); // 400 bytes
    c.insert({ ...text('b', 0), audio: new Float32Array(100) }); // 400 bytes
    assert.deepEqual(dropped, []);
    c.insert(text('c', 150)); // 300: 1,100 in all → a goes
    assert.deepEqual(dropped, ['a']);
    c.insert(text('huge', 5000), null); // added at the start and larger than the bound alone: the others go, it stays
    assert.deepEqual(dropped, ['a', 'b', 'c']);
    assert.ok(c.has('huge'));
  });

  it('keeps at most 1,000 items, whatever their size, and tells of each dropped', () => {
    const dropped: string[] = [];
    const c = new Conversation(Infinity, (item) => dropped.push(item.id));
    for (let i = 0; i < 1003; i++) c.insert(text(`i${i}`, 1));
    assert.deepEqual(dropped, ['i0', 'i1', 'i2']);
    assert.equal(c.insert(text('next', 1)), 'i1002', 'the previous item is one still there');
  });
});
