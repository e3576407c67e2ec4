/**
 * TLS served by the process itself (TLS_CERT_FILE + TLS_KEY_FILE): HTTPS and WSS on PORT and BROWSER_PORT, so the
 * `openai` SDK's realtime client — which always connects with wss: — reaches the service on a LAN
 * without a proxy. SIGHUP re-reads both files (a renewed certificate without a restart).
 */
import fs from 'node:fs';
import type { Server } from 'node:https';
import type { Config } from '../config.ts';

export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
}

/** The certificate and key, or null when TLS is off. */
export function readTls(config: Pick<Config, 'TLS_CERT_FILE' | 'TLS_KEY_FILE'>): TlsFiles | null {
  if (!config.TLS_CERT_FILE || !config.TLS_KEY_FILE) return null;
  return { cert: fs.readFileSync(config.TLS_CERT_FILE), key: fs.readFileSync(config.TLS_KEY_FILE) };
}

/** Re-reads the files into the running server: new connections use them, open ones keep theirs. Throws (keeping the old ones) when they are unreadable or do not match. */
export function reloadTls(servers: unknown[], config: Pick<Config, 'TLS_CERT_FILE' | 'TLS_KEY_FILE'>): boolean {
  const files = readTls(config);
  if (!files) return false;
  for (const server of servers) (server as Server).setSecureContext(files);
  return true;
}
