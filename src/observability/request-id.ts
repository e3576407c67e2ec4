import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

const SANE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Keeps a caller's request id when it is short and safe to echo and log; otherwise makes one. */
export function requestIdGenerator(headerName: string): (req: IncomingMessage) => string {
  const header = headerName.toLowerCase();
  return (req) => {
    const incoming = req.headers[header];
    const value = Array.isArray(incoming) ? incoming[0] : incoming;
    return value && SANE_ID.test(value) ? value : randomUUID();
  };
}
