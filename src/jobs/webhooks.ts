/**
 * Job webhooks: a POST of the finished job to the `webhook_url` it was submitted with — only to
 * hosts on JOB_WEBHOOK_ALLOWED_HOSTS, signed with JOB_WEBHOOK_SECRET:
 *   X-Webhook-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of `${t}.${body}`>
 * (the receiver recomputes it and rejects old timestamps, so a captured hook cannot be replayed).
 * The allow-list is checked when the job is submitted (400) and again on delivery, where the
 * resolved address is checked too: link-local (cloud metadata, 169.254.169.254), unspecified and
 * multicast addresses are never called, loopback and private ones only when the allow-list names
 * that address literally (or `localhost`). The connection goes to the address that was checked (no
 * second DNS answer in between); redirects are not followed.
 */
import { createHmac } from 'node:crypto';
import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Logger } from 'pino';
import { ApiError } from '../errors.ts';

export interface WebhookOptions {
  allowedHosts: string[];
  secret: string | undefined;
  timeoutMs: number;
  logger: Logger;
}

export function parseAllowedHosts(value: string | undefined): string[] {
  return (value ?? '').split(',').map((h) => h.trim().toLowerCase()).filter(Boolean);
}

export function signature(secret: string, timestamp: number, body: string): string {
  return `t=${timestamp},v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** What an address is, for the delivery check. */
function addressKind(address: string): 'public' | 'private' | 'forbidden' {
  const list = new net.BlockList();
  const v4 = net.isIPv4(address);
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  if (mapped) return addressKind(mapped);
  if (v4) {
    list.addSubnet('169.254.0.0', 16, 'ipv4');
    list.addSubnet('0.0.0.0', 8, 'ipv4');
    list.addSubnet('224.0.0.0', 3, 'ipv4');
    if (list.check(address, 'ipv4')) return 'forbidden';
    const priv = new net.BlockList();
    for (const [net4, bits] of [['127.0.0.0', 8], ['10.0.0.0', 8], ['172.16.0.0', 12], ['192.168.0.0', 16], ['100.64.0.0', 10]] as const) priv.addSubnet(net4, bits, 'ipv4');
    return priv.check(address, 'ipv4') ? 'private' : 'public';
  }
  list.addSubnet('fe80::', 10, 'ipv6');
  list.addSubnet('ff00::', 8, 'ipv6');
  list.addAddress('::', 'ipv6');
  if (list.check(address, 'ipv6')) return 'forbidden';
  const priv = new net.BlockList();
  priv.addAddress('::1', 'ipv6');
  priv.addSubnet('fc00::', 7, 'ipv6');
  return priv.check(address, 'ipv6') ? 'private' : 'public';
}

export class Webhooks {
  constructor(private readonly options: WebhookOptions) {}

  /** The submitted URL, checked against the allow-list (400 when it is not allowed). */
  check(raw: string): URL {
    const refuse = (why: string) => ApiError.badRequest(`webhook_url: ${why}`, 'webhook_url', 'webhook_not_allowed');
    if (this.options.allowedHosts.length === 0 || !this.options.secret) throw refuse('webhooks are off on this server (JOB_WEBHOOK_ALLOWED_HOSTS is empty).');
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw refuse('must be an absolute http(s) URL.');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw refuse('must be an http(s) URL.');
    if (url.username || url.password) throw refuse('must not carry credentials.');
    if (!this.allowed(url)) throw refuse(`the host ${url.host} is not on JOB_WEBHOOK_ALLOWED_HOSTS.`);
    if (net.isIP(this.bareHost(url)) && addressKind(this.bareHost(url)) === 'forbidden') throw refuse(`the address ${url.hostname} is never called.`);
    return url;
  }

  private bareHost(url: URL): string {
    return url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  }

  private allowed(url: URL): boolean {
    const host = url.hostname.toLowerCase();
    const port = url.port || (url.protocol === 'https:' ? '443' : '80');
    return this.options.allowedHosts.some((entry) => entry === host || entry === `${host}:${port}`);
  }

  /** Whether `address` (resolved from `url`) may be called. */
  private addressAllowed(url: URL, address: string): boolean {
    const kind = addressKind(address);
    if (kind === 'forbidden') return false;
    if (kind === 'public') return true;
    const host = this.bareHost(url);
    return host === address.toLowerCase() || (host === 'localhost' && /^(127\.|::1$)/.test(address));
  }

  /** Delivers `payload` (3 tries, backoff, on network errors and 5xx); never throws. */
  async deliver(rawUrl: string, payload: unknown, jobId: string): Promise<boolean> {
    const log = this.options.logger.child({ job_id: jobId });
    let url: URL;
    try {
      url = this.check(rawUrl);
    } catch (error) {
      log.warn({ reason: (error as Error).message }, 'webhook refused');
      return false;
    }
    const body = JSON.stringify(payload);
    for (let attempt = 1; attempt <= 3; attempt++) {
      const timestamp = Math.floor(Date.now() / 1000);
      try {
        const status = await this.post(url, body, signature(this.options.secret!, timestamp, body), jobId);
        log.info({ status, attempt }, 'webhook delivered');
        if (status < 500) return status < 300;
      } catch (error) {
        log.warn({ reason: (error as Error).message, attempt }, 'webhook delivery failed');
        if ((error as { code?: string }).code === 'webhook_address_refused') return false;
      }
      await new Promise((r) => setTimeout(r, 500 * 2 ** attempt));
    }
    return false;
  }

  private post(url: URL, body: string, sig: string, jobId: string): Promise<number> {
    const lookup: net.LookupFunction = (hostname, options, callback) => {
      dns.lookup(hostname, { ...options, all: false }, (error, address, family) => {
        if (error) return callback(error, '', 0);
        if (!this.addressAllowed(url, address)) {
          return callback(Object.assign(new Error(`webhook host ${hostname} resolved to ${address}, which is not called`), { code: 'webhook_address_refused' }), '', 0);
        }
        callback(null, address, family);
      });
    };
    const literal = this.bareHost(url);
    if (net.isIP(literal) && !this.addressAllowed(url, literal)) {
      return Promise.reject(Object.assign(new Error(`webhook address ${literal} is not called`), { code: 'webhook_address_refused' }));
    }
    const client = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const request = client.request(
        url,
        {
          method: 'POST',
          lookup,
          timeout: this.options.timeoutMs,
          headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'X-Webhook-Signature': sig, 'X-Webhook-Id': jobId, 'User-Agent': 'gemma-3-api-webhooks' },
        },
        (response) => {
          response.resume();
          response.on('end', () => resolve(response.statusCode ?? 0));
          response.on('error', reject);
        },
      );
      request.on('timeout', () => request.destroy(new Error('webhook timed out')));
      request.on('error', reject);
      request.end(body);
    });
  }
}
