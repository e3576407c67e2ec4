/**
 * The playground's API client: REST with the configured key header, Server-Sent Events read from
 * fetch streams, WebSocket URLs carrying the key the documented way (the `api_key.<key>`
 * subprotocol next to `gemma-3-api`, since browsers cannot set headers on a WebSocket).
 */
import type { Connection } from './settings.ts';

/** The service's error envelope, readable: message + request id. */
export class ApiProblem extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly requestId: string | null,
    readonly code: string | null,
  ) {
    super(message);
  }
}

/**
 * Told when the server refuses a request for want of a valid API key, so the page can open the
 * connection settings with "this server needs an API key" instead of leaving a bare 401.
 */
export const unauthorized = new EventTarget();

export function headers(connection: Connection, extra: Record<string, string> = {}): Record<string, string> {
  return { ...(connection.apiKey ? { [connection.keyHeader]: connection.apiKey } : {}), ...extra };
}

async function problem(response: Response): Promise<ApiProblem> {
  const text = await response.text();
  try {
    const body = JSON.parse(text) as { error?: { message?: string; code?: string }; request_id?: string };
    return new ApiProblem(body.error?.message ?? `HTTP ${response.status}`, response.status, body.request_id ?? response.headers.get('x-request-id'), body.error?.code ?? null);
  } catch {
    return new ApiProblem(text.slice(0, 300) || `HTTP ${response.status}`, response.status, response.headers.get('x-request-id'), null);
  }
}

export async function request(connection: Connection, path: string, init: RequestInit & { json?: unknown } = {}): Promise<Response> {
  const { json, ...rest } = init;
  let response: Response;
  try {
    response = await fetch(`${connection.baseUrl}${path}`, {
      ...rest,
      headers: headers(connection, { ...(json !== undefined ? { 'content-type': 'application/json' } : {}), ...((rest.headers as Record<string, string>) ?? {}) }),
      body: json !== undefined ? JSON.stringify(json) : rest.body,
    });
  } catch (error) {
    if ((error as Error).name === 'AbortError') throw error;
    throw new ApiProblem(`Cannot reach ${connection.baseUrl} (${(error as Error).message}). Check the base URL in Connection settings.`, 0, null, 'network');
  }
  if (!response.ok) {
    const failure = await problem(response);
    if (response.status === 401) unauthorized.dispatchEvent(new Event('unauthorized'));
    throw failure;
  }
  return response;
}

export async function getJson<T>(connection: Connection, path: string): Promise<T> {
  return (await (await request(connection, path)).json()) as T;
}

export interface SseEvent {
  event: string;
  data: string;
}

/** Parses text/event-stream from a fetch body, event by event. */
export async function* readSse(response: Response): AsyncGenerator<SseEvent> {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer += value;
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of frame.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      if (data.length) yield { event, data: data.join('\n') };
    }
  }
}

/** ws(s)://… for a path, and the subprotocols that carry the key. */
export function socket(connection: Connection, path: string): WebSocket {
  const url = `${connection.baseUrl.replace(/^http/, 'ws')}${path}`;
  const protocols = ['gemma-3-api', ...(connection.apiKey ? [`api_key.${connection.apiKey}`] : [])];
  const ws = new WebSocket(url, protocols);
  ws.binaryType = 'arraybuffer';
  return ws;
}

export function describeError(error: unknown): { message: string; requestId: string | null } {
  if (error instanceof ApiProblem) return { message: error.message, requestId: error.requestId };
  if (error instanceof Error) return { message: error.message, requestId: null };
  return { message: String(error), requestId: null };
}

/**
 * Resolves when the socket opens; rejects (never hangs) when it errors or closes first — a refused
 * handshake (401, 403, 429) closes it without ever opening.
 */
export function opened(ws: WebSocket, what: string): Promise<void> {
  if (ws.readyState === WebSocket.OPEN) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = () => {
      ws.removeEventListener('open', onOpen);
      ws.removeEventListener('close', onClose);
    };
    const onOpen = () => {
      done();
      resolve();
    };
    const onClose = (event: CloseEvent) => {
      done();
      reject(new Error(`The ${what} connection could not be opened${event.code && event.code !== 1006 ? ` (close ${event.code})` : ''}: check the base URL and API key in Connection settings.`));
    };
    ws.addEventListener('open', onOpen);
    ws.addEventListener('close', onClose);
  });
}

/** The spoken language as a name and its code, whichever the server sent ("en" or "english"). */
export function languageLabel(language: string | undefined | null): string {
  if (!language) return 'language unknown';
  const value = language.trim().toLowerCase();
  if (/^[a-z]{2,3}$/.test(value)) {
    try {
      const name = new Intl.DisplayNames(['en'], { type: 'language' }).of(value);
      if (name && name.toLowerCase() !== value) return `${name} (${value})`;
    } catch {
      // not a code Intl knows
    }
    return value;
  }
  return value.charAt(0).toUpperCase() + value.slice(1);
}
