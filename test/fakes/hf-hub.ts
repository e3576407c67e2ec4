/**
 * A local stand-in for the Hugging Face hub's file endpoint as huggingface_hub uses it:
 * `GET /<org>/<repo>/resolve/<revision>/<file>` answers 302 with `x-repo-commit`,
 * `x-linked-etag` and `x-linked-size` to a blob URL, which serves the bytes with content-length.
 */
import http from 'node:http';

export interface FakeHub {
  url: string;
  hits: { path: string; authorization?: string }[];
  close: () => Promise<void>;
}

export const FAKE_COMMIT = 'a'.repeat(40);

export async function startFakeHub(files: Record<string, Buffer>, options: { requireToken?: string } = {}): Promise<FakeHub> {
  const hits: FakeHub['hits'] = [];
  const server = http.createServer((req, res) => {
    hits.push({ path: req.url ?? '', authorization: req.headers.authorization });
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(req.url ?? '');
    if (resolve) {
      const [, repo, , file] = resolve as unknown as [string, string, string, string];
      if (options.requireToken && req.headers.authorization !== `Bearer ${options.requireToken}`) {
        res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'Access to model is restricted.' }));
        return;
      }
      const key = `${repo}/${decodeURIComponent(file)}`;
      const data = files[key];
      if (!data) {
        res.writeHead(404, { 'x-error-code': 'EntryNotFound' }).end('Entry not found');
        return;
      }
      res.writeHead(302, { location: `/blobs/${encodeURIComponent(key)}`, 'x-repo-commit': FAKE_COMMIT, 'x-linked-etag': `"etag-${data.length}"`, 'x-linked-size': String(data.length) }).end();
      return;
    }
    const blob = /^\/blobs\/(.+)$/.exec(req.url ?? '');
    const data = blob ? files[decodeURIComponent(blob[1]!)] : undefined;
    if (!data) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-length': data.length, 'content-type': 'application/octet-stream' });
    // in pieces, so progress has something to report
    let offset = 0;
    const pump = () => {
      while (offset < data.length) {
        const chunk = data.subarray(offset, offset + 65536);
        offset += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end();
    };
    pump();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    hits,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}
