/** hf: model resolution into the Hugging Face cache, against a local stand-in for the hub. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { ModelUnavailableError } from '../../src/models/errors.ts';
import { findInCache, parseHfUri, resolveHfFile, type HfOptions } from '../../src/models/hugging-face.ts';
import { FAKE_COMMIT, startFakeHub, type FakeHub } from '../fakes/hf-hub.ts';
import { freePort } from '../helpers/process.ts';

const MODEL = Buffer.alloc(300_000, 7);

function captureLogger() {
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, new Writable({ write: (c: Buffer, _e, done) => (lines.push(c.toString()), done()) }));
  return { logger, lines };
}

describe('Hugging Face model resolution', () => {
  let hub: FakeHub;
  let home: string;
  const base = (over: Partial<HfOptions> = {}): HfOptions => ({ home, endpoint: hub.url, download: true, timeoutMs: 10_000, logger: pino({ level: 'silent' }), variable: 'GEMMA_MODEL', ...over });
  before(async () => {
    hub = await startFakeHub({ 'org/repo/sub/model.gguf': MODEL, 'org/gated/model.gguf': MODEL });
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'hf-home-'));
  });
  after(() => hub.close());

  it('parses hf: URIs with optional revision and nested paths', () => {
    assert.deepEqual(parseHfUri('hf:ggml-org/gemma-3-1b-it-GGUF/gemma-3-1b-it-Q4_K_M.gguf'), { repo: 'ggml-org/gemma-3-1b-it-GGUF', revision: 'main', file: 'gemma-3-1b-it-Q4_K_M.gguf' });
    assert.deepEqual(parseHfUri('hf:a/b@v1.0/dir/f.gguf'), { repo: 'a/b', revision: 'v1.0', file: 'dir/f.gguf' });
    assert.throws(() => parseHfUri('hf:a/b'));
    assert.throws(() => parseHfUri('hf:a/b/../../etc/passwd'));
  });

  it('downloads into the huggingface_hub cache layout, logging progress', async () => {
    const { logger, lines } = captureLogger();
    const file = await resolveHfFile('hf:org/repo/sub/model.gguf', base({ logger, token: 'hf_secret_token' }));
    assert.deepEqual(fs.readFileSync(file), MODEL);
    const dir = path.join(home, 'hub', 'models--org--repo');
    assert.equal(file, path.join(dir, 'snapshots', FAKE_COMMIT, 'sub', 'model.gguf'));
    assert.ok(fs.lstatSync(file).isSymbolicLink());
    assert.equal(fs.realpathSync(file), path.join(dir, 'blobs', `etag-${MODEL.length}`));
    assert.equal(fs.readFileSync(path.join(dir, 'refs', 'main'), 'utf8'), FAKE_COMMIT);
    assert.ok(lines.some((l) => l.includes('model download progress')));
    assert.ok(lines.some((l) => l.includes('model download complete')));
    assert.ok(!lines.join('').includes('hf_secret_token'));
    assert.equal(hub.hits.find((h) => h.path.includes('/resolve/'))?.authorization, 'Bearer hf_secret_token');
  });

  it('uses the cache without touching the network', async () => {
    const hits = hub.hits.length;
    const deadEndpoint = `http://127.0.0.1:${await freePort()}`;
    const file = await resolveHfFile('hf:org/repo/sub/model.gguf', base({ endpoint: deadEndpoint }));
    assert.equal(findInCache(home, parseHfUri('hf:org/repo/sub/model.gguf')), file);
    assert.equal(hub.hits.length, hits);
  });

  it('fails fast with the remedy when the hub is unreachable', async () => {
    const started = Date.now();
    const deadEndpoint = `http://127.0.0.1:${await freePort()}`;
    await assert.rejects(resolveHfFile('hf:org/other/model.gguf', base({ endpoint: deadEndpoint })), (error: Error) => {
      assert.ok(error instanceof ModelUnavailableError);
      assert.match(error.message, /Could not reach .*npm run pull/s);
      return true;
    });
    assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
  });

  it('does not download when MODEL_DOWNLOAD=false', async () => {
    await assert.rejects(resolveHfFile('hf:org/other/model.gguf', base({ download: false })), /MODEL_DOWNLOAD=false.*npm run pull/s);
  });

  it('explains gated repos and missing files', async () => {
    const gated = await startFakeHub({ 'org/gated/model.gguf': MODEL }, { requireToken: 'right' });
    try {
      await assert.rejects(resolveHfFile('hf:org/gated/model.gguf', base({ endpoint: gated.url })), /gated or private.*HUGGING_FACE_HUB_TOKEN/s);
      const file = await resolveHfFile('hf:org/gated/model.gguf', base({ endpoint: gated.url, token: 'right' }));
      assert.deepEqual(fs.readFileSync(file), MODEL);
    } finally {
      await gated.close();
    }
    await assert.rejects(resolveHfFile('hf:org/repo/absent.gguf', base()), /does not exist \(HTTP 404/);
  });
});
