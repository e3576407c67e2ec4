/**
 * Failed authentications per client address (AUTH_FAILURES_PER_MINUTE), fail2ban-style: a request
 * that presents a wrong key counts one failure; past the limit the address is blocked until its
 * one-minute window ends — every request that needs a key gets 429 `too_many_failed_authentications`
 * with Retry-After, a good key included (otherwise a correct guess would still answer 200 and the
 * block would not slow guessing down). Requests without any key do not count: they guess nothing.
 * Counts live in this process (an LRU bounded in entries), per replica. An IPv6 client is counted
 * by its /64 (one host usually holds a whole /64 and could otherwise rotate addresses at will).
 */
import { isIPv6 } from 'node:net';
import { LRUCache } from 'lru-cache';
import { ApiError } from '../errors.ts';

const WINDOW_MS = 60_000;
const MAX_TRACKED_ADDRESSES = 100_000;

interface Window {
  failures: number;
  /** When the window (and any block) ends, ms since the epoch. */
  endsAt: number;
}

/** What failures are counted against: an IPv4 address, or an IPv6 address's /64. */
export function addressGroup(ip: string): string {
  if (!isIPv6(ip) || /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(ip)) return ip;
  const [head = '', tail] = ip.toLowerCase().split('::') as [string, string | undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

export class AuthFailureLimiter {
  private readonly windows = new LRUCache<string, Window>({ max: MAX_TRACKED_ADDRESSES, ttl: WINDOW_MS, ttlAutopurge: false });

  /** `limit` wrong keys per minute are answered 401; the next request 429. 0 = off. */
  constructor(private readonly limit: number) {}

  /** The 429 for an address that is blocked now; undefined otherwise. */
  blocked(address: string): ApiError | undefined {
    if (this.limit === 0 || this.windows.size === 0) return undefined; // the common case costs nothing
    const window = this.windows.get(addressGroup(address));
    if (!window || window.failures < this.limit) return undefined;
    const seconds = Math.max(1, Math.ceil((window.endsAt - Date.now()) / 1000));
    return new ApiError(429, 'rate_limit_error', `Too many failed authentications from this address (${this.limit} per minute, AUTH_FAILURES_PER_MINUTE); it is blocked for ${seconds} s.`, {
      code: 'too_many_failed_authentications',
      headers: { 'Retry-After': String(seconds) },
    });
  }

  /** Counts one failure against the address. */
  record(address: string): void {
    if (this.limit === 0) return;
    const now = Date.now();
    const group = addressGroup(address);
    const window = this.windows.get(group);
    if (window && window.endsAt > now) {
      window.failures++;
      return;
    }
    // the entry's TTL is the window: a blocked address is forgotten when its block ends
    this.windows.set(group, { failures: 1, endsAt: now + WINDOW_MS });
  }
}
