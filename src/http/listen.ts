/**
 * Listening: the API port (PORT, 6666 — which browsers refuse) and a browser-safe port for people
 * (BROWSER_PORT). The second port is a plain node:http server that hands every request, upgrade and
 * client error to the Fastify server's own listeners — the way Fastify binds its secondary
 * addresses — so both ports share the one app: routes, hooks, keys, limits, WebSockets, draining.
 * Closing the app closes both.
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config.ts';
import { readTls } from './tls.ts';

export interface Listening {
  /** For API clients (PORT). */
  apiUrl: string;
  /** For browsers (BROWSER_PORT); undefined when it is off. */
  browserUrl?: string;
  /** Closes idle keep-alive connections on every port (shutdown reaper). */
  closeIdleConnections(): void;
  /** Servers besides Fastify's own that serve TLS (the browser port), for certificate reloads. */
  secureServers: https.Server[];
}

/** A port that cannot be opened (in use, not allowed): main.ts prints its message as one line and exits 1. */
export class ListenError extends Error {
  override readonly name = 'ListenError';
}

/** Why `port` could not be opened, naming the variable that sets it. */
function listenError(error: unknown, variable: 'PORT' | 'BROWSER_PORT', port: number, host: string): Error {
  const code = (error as NodeJS.ErrnoException).code;
  const why = code === 'EADDRINUSE' ? 'it is already in use (another process listens there)' : code === 'EACCES' ? 'permission denied (ports below 1024 need privileges)' : code === 'EADDRNOTAVAIL' ? `${host} is not an address of this machine (HOST)` : (error as Error).message;
  const remedy = variable === 'PORT' ? 'set PORT to a free port' : 'set BROWSER_PORT to a free port, or to off';
  return new ListenError(`cannot listen on ${variable} ${port} (${host}): ${why}; ${remedy}`);
}

function shownHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return 'localhost';
  return host.includes(':') ? `[${host}]` : host;
}

export async function listen(app: FastifyInstance, config: Pick<Config, 'PORT' | 'BROWSER_PORT' | 'HOST' | 'TLS_CERT_FILE' | 'TLS_KEY_FILE'>): Promise<Listening> {
  const wanted = config.BROWSER_PORT;
  // with TLS_CERT_FILE/TLS_KEY_FILE both ports serve HTTPS (a page must not mix schemes)
  const tls = readTls(config);
  const scheme = tls ? 'https' : 'http';
  // requireHostHeader: false as on the API port (src/app.ts): the app refuses a missing Host in its envelope
  // one listener when the API port already is the browser port (or the second one is off)
  const browser = wanted > 0 && wanted !== config.PORT ? (tls ? https.createServer({ ...tls, requireHostHeader: false }) : http.createServer({ requireHostHeader: false })) : undefined;
  if (browser) {
    const main = app.server;
    browser.on('request', (req, res) => main.emit('request', req, res));
    browser.on('upgrade', (req, socket, head) => main.emit('upgrade', req, socket, head));
    browser.on('clientError', (error, socket) => main.emit('clientError', error, socket));
    // stop accepting on both ports as soon as closing begins; in-flight requests finish (503 for
    // new ones), and the app is closed once the browser port's last connection has ended too
    let closed: Promise<void> = Promise.resolve();
    app.addHook('preClose', (done) => {
      if (browser.listening) {
        closed = new Promise((resolve) => browser.close(() => resolve()));
        browser.closeIdleConnections();
      }
      done();
    });
    app.addHook('onClose', async () => closed);
  }
  await app.listen({ port: config.PORT, host: config.HOST }).catch((error: unknown) => {
    throw listenError(error, 'PORT', config.PORT, config.HOST);
  });
  const apiPort = (app.server.address() as AddressInfo).port;
  const apiUrl = `${scheme}://${shownHost(config.HOST)}:${apiPort}`;
  if (!browser) {
    const browserUrl = wanted > 0 ? apiUrl : undefined;
    return { apiUrl, browserUrl, closeIdleConnections: () => app.server.closeIdleConnections(), secureServers: [] };
  }
  // the same timeouts as the Fastify server (REQUEST_TIMEOUT_SECONDS, keep-alive)
  browser.requestTimeout = app.server.requestTimeout;
  browser.headersTimeout = app.server.headersTimeout;
  browser.keepAliveTimeout = app.server.keepAliveTimeout;
  browser.maxRequestsPerSocket = app.server.maxRequestsPerSocket;
  browser.timeout = app.server.timeout;
  await new Promise<void>((resolve, reject) => {
    const failed = (error: Error) => reject(listenError(error, 'BROWSER_PORT', wanted, config.HOST));
    browser.once('error', failed);
    browser.listen(wanted, config.HOST, () => {
      browser.off('error', failed);
      resolve();
    });
  });
  browser.on('error', (error) => app.log.error({ err: error }, 'browser port server error'));
  return {
    apiUrl,
    browserUrl: `${scheme}://${shownHost(config.HOST)}:${(browser.address() as AddressInfo).port}`,
    secureServers: browser instanceof https.Server ? [browser] : [],
    closeIdleConnections: () => {
      app.server.closeIdleConnections();
      browser.closeIdleConnections();
    },
  };
}
