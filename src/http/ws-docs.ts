/**
 * @fastify/websocket hides WebSocket routes from @fastify/swagger, so their protocol is documented
 * by hand: each WebSocket route module adds an entry here and docs.ts merges them into the document.
 */
export interface WsDoc {
  summary: string;
  /** The protocol: messages each way, events, close codes. Markdown. */
  description: string;
  tags: string[];
}

export type WsDocs = Map<string, WsDoc>;

const KEY_NOTE =
  'Authenticate in the handshake: the API key header, `Authorization: Bearer <key>`, the `api_key` query parameter, or the subprotocol `api_key.<key>` offered next to `gemma-3-api` (browsers cannot set headers; the server selects `gemma-3-api`). A refused handshake gets the HTTP 401 error envelope and no upgrade.';

const LIMITS_NOTE =
  'Limits: at most WS_MAX_STREAMS_PER_KEY sockets open per key (then 429 `too_many_streams`, no upgrade); incoming messages are paced to WS_MAX_MESSAGES_PER_SECOND (reading pauses, nothing is dropped; a flood gets an `error` event `rate_limited` and close 1008). When the server shuts down, work already sent is finished, then the socket closes with 1001; messages sent after that get one `error` event `shutting_down`.';

/** The WebSocket protocols as a section of the document's introduction (markdown headings). */
export function wsIntroduction(docs: WsDocs): string {
  const sections = [...docs.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([path, doc]) => `### \`${path}\` — ${doc.summary}\n\n${doc.description}`);
  return [
    '## WebSockets',
    'Open these with a WebSocket client (`ws://` on the same host and port; `wss://` behind TLS): they cannot be tried from this page.',
    KEY_NOTE,
    LIMITS_NOTE,
    ...sections,
  ].join('\n\n');
}

export function wsOperations(docs: WsDocs): Record<string, unknown> {
  const paths: Record<string, unknown> = {};
  for (const [path, doc] of [...docs.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    paths[path] = {
      get: {
        summary: doc.summary,
        tags: doc.tags,
        // a browser's fetch cannot upgrade: the reference lists the protocol in its introduction instead
        'x-scalar-ignore': true,
        description: `${doc.description}\n\n${KEY_NOTE}\n\n${LIMITS_NOTE}`,
        parameters: [
          { name: 'api_key', in: 'query', required: false, schema: { type: 'string' }, description: 'API key, for clients that cannot set headers.' },
          { name: 'Upgrade', in: 'header', required: true, schema: { type: 'string', const: 'websocket' } },
        ],
        responses: {
          '101': { description: 'Switching Protocols: the WebSocket is open.' },
          '401': { description: 'Missing or invalid API key (no upgrade).', content: { 'application/json': { schema: { $ref: '#/components/schemas/ErrorEnvelope' } } } },
          '429': { description: 'Too many sockets open for this key, or the per-minute rate limit (no upgrade).', content: { 'application/json': { schema: { $ref: '#/components/schemas/ErrorEnvelope' } } } },
        },
      },
    };
  }
  return paths;
}
