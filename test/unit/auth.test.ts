import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiKeyStore } from '../../src/http/auth.ts';
import { addressGroup } from '../../src/http/auth-failures.ts';

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

describe('failed authentications are counted per', () => {
  it('IPv4 address, and IPv6 /64 (however the address is written)', () => {
    assert.equal(addressGroup('203.0.113.7'), '203.0.113.7');
    assert.equal(addressGroup('::ffff:203.0.113.7'), '::ffff:203.0.113.7');
    assert.equal(addressGroup('2001:db8:0:1::7'), '2001:db8:0:1::/64');
    assert.equal(addressGroup('2001:0DB8:0000:0001:ffff:1:2:3'), '2001:db8:0:1::/64');
    assert.equal(addressGroup('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(addressGroup('::1'), '0:0:0:0::/64');
    assert.notEqual(addressGroup('2001:db8:0:2::7'), addressGroup('2001:db8:0:1::7'));
  });
});
