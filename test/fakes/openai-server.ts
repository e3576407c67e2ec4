/**
 * A local fake OpenAI-compatible server following the published API shapes (chat.completion,
 * chat.completion.chunk SSE ending in [DONE], text_completion, models list, error objects), with
 * scripted failures: each request pops the next planned status (429/500/...) before succeeding.
 */
import http from 'node:http';

export interface FakeOpenAi {
  url: string;
  requests: { path: string; body: Record<string, unknown>; authorization?: string }[];
  /** Statuses to answer before behaving (e.g. [429, 500]). */
  failures: number[];
  /** Delay before answering, ms. */
  delayMs: number;
  /** Answer 200 with a body that is not the promised JSON. */
  malformed?: boolean;
  /** Stop a stream after this many chunks by destroying the socket. */
  cutStreamAfter?: number;
  close: () => Promise<void>;
}

const WORDS = ['Hello', ' from', ' the', ' fake', ' server.'];

export async function startFakeOpenAi(): Promise<FakeOpenAi> {
  const state: Omit<FakeOpenAi, 'url' | 'close'> = { requests: [], failures: [], delayMs: 0 };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    const respond = async () => {
      const raw = Buffer.concat(chunks).toString('latin1');
      const multipart = (req.headers['content-type'] ?? '').startsWith('multipart/form-data');
      const field = (name: string) => new RegExp(`name="${name.replace(/[[\]]/g, '\\$&')}"\r\n\r\n([^\r]*)`).exec(raw)?.[1];
      const body: Record<string, unknown> = multipart
        ? { model: field('model'), response_format: field('response_format'), language: field('language'), granularities: raw.match(/name="timestamp_granularities\[\]"\r\n\r\n(\w+)/g)?.length ?? 0, file_is_wav: /\r\n\r\nRIFF....WAVE/s.test(raw) }
        : raw ? (JSON.parse(raw) as Record<string, unknown>) : {};
      state.requests.push({ path: req.url ?? '', body, authorization: req.headers.authorization });
      if (state.delayMs) await new Promise((r) => setTimeout(r, state.delayMs));
      if (res.destroyed) return;
      const failure = state.failures.shift();
      if (failure) {
        res.writeHead(failure, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: `scripted ${failure}`, type: failure === 429 ? 'rate_limit_error' : 'server_error', param: null, code: null } }));
        return;
      }
      if (state.malformed && req.url !== '/v1/models') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"choices": [ {"tru');
        return;
      }
      if (req.url === '/v1/models') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ object: 'list', data: [{ id: 'fake-gemma', object: 'model', created: 0, owned_by: 'fake' }] }));
        return;
      }
      if (req.url === '/v1/audio/transcriptions' || req.url === '/v1/audio/translations') {
        const text = req.url.endsWith('translations') ? 'Hello from the fake translator.' : 'Hello from the fake transcriber.';
        res.writeHead(200, { 'content-type': 'application/json' });
        if (body.response_format === 'verbose_json') {
          res.end(
            JSON.stringify({
              task: req.url.endsWith('translations') ? 'translate' : 'transcribe',
              language: 'english',
              duration: 2,
              text,
              segments: [{ id: 0, seek: 0, start: 0, end: 1.5, text: ` ${text}`, tokens: [50364, 2425], temperature: 0, avg_logprob: -0.2, compression_ratio: 1.1, no_speech_prob: 0.01 }],
              ...(body.granularities ? { words: [{ word: 'Hello', start: 0, end: 0.4 }] } : {}),
            }),
          );
        } else res.end(JSON.stringify({ text }));
        return;
      }
      const isChat = req.url === '/v1/chat/completions';
      if (!isChat && req.url !== '/v1/completions') {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: 'not found', type: 'invalid_request_error', param: null, code: null } }));
        return;
      }
      const max = typeof body.max_tokens === 'number' ? body.max_tokens : WORDS.length;
      const words = WORDS.slice(0, max);
      const finish = words.length < WORDS.length ? 'length' : 'stop';
      const usage = { prompt_tokens: 11, completion_tokens: words.length, total_tokens: 11 + words.length };
      const id = 'fake-1';
      if (body.stream) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        const send = (data: unknown) => res.write(`data: ${JSON.stringify(data)}\n\n`);
        let sent = 0;
        for (const word of words) {
          if (state.cutStreamAfter !== undefined && sent >= state.cutStreamAfter) {
            await new Promise((r) => setTimeout(r, 50)); // let the chunks reach the client first
            res.destroy();
            return;
          }
          send(isChat
            ? { id, object: 'chat.completion.chunk', created: 0, model: body.model, choices: [{ index: 0, delta: { content: word }, finish_reason: null }] }
            : { id, object: 'text_completion', created: 0, model: body.model, choices: [{ index: 0, text: word, finish_reason: null, logprobs: null }] });
          sent++;
        }
        send(isChat
          ? { id, object: 'chat.completion.chunk', created: 0, model: body.model, choices: [{ index: 0, delta: {}, finish_reason: finish }] }
          : { id, object: 'text_completion', created: 0, model: body.model, choices: [{ index: 0, text: '', finish_reason: finish, logprobs: null }] });
        if ((body.stream_options as { include_usage?: boolean } | undefined)?.include_usage) send({ id, object: isChat ? 'chat.completion.chunk' : 'text_completion', created: 0, model: body.model, choices: [], usage });
        res.end('data: [DONE]\n\n');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify(
          isChat
            ? { id, object: 'chat.completion', created: 0, model: body.model, choices: [{ index: 0, message: { role: 'assistant', content: words.join('') }, finish_reason: finish }], usage }
            : { id, object: 'text_completion', created: 0, model: body.model, choices: [{ index: 0, text: words.join(''), finish_reason: finish, logprobs: null }], usage },
        ),
      );
    };
    // a fault in the fake (a body it cannot parse) answers 500 instead of an unhandled rejection
    req.on('end', () => {
      respond().catch((error: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: `fake server: ${String(error)}`, type: 'server_error', param: null, code: null } }));
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const address = server.address() as { port: number };
  return Object.assign(state, {
    url: `http://127.0.0.1:${address.port}/v1`,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  }) as FakeOpenAi;
}
