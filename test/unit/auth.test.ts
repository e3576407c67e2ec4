import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiKeyStore } from '../../src/http/auth.ts';

describe('ApiKeyStore', () => {
  it('accepts exactly the stored keys', () => {
    const store = new ApiKeyStore(() => ['k1', 'k2']);
    assert.equal(store.verify('k1'), true);
    assert.equal(store.verify('k2'), true);
    assert.equal(store.verify('k3'), false);
    assert.equal(store.verify('k'), false);
    assert.equal(store.verify('k1 '), false);
    assert.equal(store.verify(''), false);
    assert.equal(store.verify(undefined), false);
  });

  it('rotates keys on reload', () => {
    let keys = ['old'];
    const store = new ApiKeyStore(() => keys);
    assert.equal(store.verify('old'), true);
    keys = ['new'];
    assert.equal(store.reload(), 1);
    assert.equal(store.verify('old'), false);
    assert.equal(store.verify('new'), true);
  });

  it('keeps the previous keys when the source fails', () => {
    let fail = false;
    const store = new ApiKeyStore(() => {
      if (fail) throw new Error('unreadable');
      return ['k'];
    });
    fail = true;
    assert.throws(() => store.reload());
    assert.equal(store.verify('k'), true);
  });
});
