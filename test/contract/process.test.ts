/** The real process: start-up validation, signals (SIGTERM drain, SIGHUP key rotation). */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { loopingGemmaPath } from '../helpers/models.ts';
import { freePort, spawnService, waitForHealth, waitForReady } from '../helpers/process.ts';
import { recordSecrets } from '../helpers/test-logs.ts';

describe('service process', () => {
  it('fails at start-up listing every bad value, and never listens', async () => {
    const port = await freePort();
    const service = spawnService({ API_KEY_ENABLED: 'true', LOG_LEVEL: 'chatty', OPENAUDIO_TIMEOUT_SECONDS: 'soon', LOCAL_WHISPER_MODEL: 'base' }, port);
    const code = await service.exited;
    assert.equal(code, 1);
    const out = service.output();
    assert.match(out, /Invalid configuration \(3 problems\)/);
    assert.match(out, /LOG_LEVEL/);
    assert.match(out, /OPENAUDIO_TIMEOUT_SECONDS/);
    assert.match(out, /API_KEYS: API_KEY_ENABLED=true needs at least one key/);
    await assert.rejects(fetch(`http://127.0.0.1:${port}/health`));
  });

  it('serves, rotates keys on SIGHUP and on a change of API_KEYS_FILE, and exits 0 on SIGTERM', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'svc-'));
    const keysFile = path.join(dir, 'keys.txt');
    fs.writeFileSync(keysFile, '# rotated by ops\nfirst-key\n');
    recordSecrets(['first-key', 'second-key', 'third-key']);
    const port = await freePort();
    // the test polls with a not-yet-valid key until the file change is seen: no failed-auth block (AUTH_FAILURES_PER_MINUTE)
    const service = spawnService({ API_KEY_ENABLED: 'true', API_KEYS_FILE: keysFile, LOG_LEVEL: 'info', AUTH_FAILURES_PER_MINUTE: '0' }, port);
    try {
      await waitForHealth(service.url);
      const call = (key: string) => fetch(`${service.url}/v1/generate`, { method: 'POST', headers: { 'X-API-Key': key, 'content-type': 'application/json' }, body: '{"prompt":"hi"}' });
      assert.equal((await call('first-key')).status, 503);
      assert.equal((await call('second-key')).status, 401);

      fs.writeFileSync(keysFile, 'second-key\n');
      service.child.kill('SIGHUP');
      const deadline = Date.now() + 5000;
      while (!service.output().includes('API keys reloaded') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.equal((await call('second-key')).status, 503);
      assert.equal((await call('first-key')).status, 401);

      // a mounted Kubernetes secret changes with no SIGHUP: the file is watched too
      fs.writeFileSync(keysFile, 'third-key\n');
      const watched = Date.now() + 12_000;
      while ((await call('third-key')).status === 401 && Date.now() < watched) await new Promise((r) => setTimeout(r, 250));
      assert.equal((await call('third-key')).status, 503);
      assert.equal((await call('second-key')).status, 401);
    } finally {
      service.child.kill('SIGTERM');
    }
    assert.equal(await service.exited, 0);
    assert.match(service.output(), /shutting down/);
    assert.ok(!['first-key', 'second-key', 'third-key'].some((k) => service.output().includes(k)), 'keys never logged');
  });

  it('on SIGTERM finishes in-flight generations, refuses new work, and exits 0', async () => {
    const port = await freePort();
    const service = spawnService({ GEMMA_MODEL: loopingGemmaPath(), LLM_DEVICE: 'cpu', LLM_PARALLEL: '2', LLM_CONTEXT_SIZE: '2048', LOG_LEVEL: 'info', ENABLE_LOCAL_WHISPER: 'false' }, port);
    try {
      await waitForHealth(service.url);
      assert.ok(await waitForReady(service.url, 30_000), 'every engine ready');
      const inflight = [1, 2].map(() =>
        fetch(`${service.url}/v1/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'go', max_tokens: 300 }) }).then(
          async (r) => ({ status: r.status, body: (await r.json()) as { usage: { completion_tokens: number } } }),
        ),
      );
      await new Promise((r) => setTimeout(r, 300));
      service.child.kill('SIGTERM');
      const results = await Promise.all(inflight);
      for (const r of results) {
        assert.equal(r.status, 200);
        assert.equal(r.body.usage.completion_tokens, 300);
      }
      await assert.rejects(fetch(`${service.url}/health`, { signal: AbortSignal.timeout(2000) }));
    } finally {
      service.child.kill('SIGTERM');
    }
    assert.equal(await service.exited, 0);
  });
});
