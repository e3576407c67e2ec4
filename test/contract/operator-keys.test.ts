/**
 * Operator scope (ADMIN_API_KEYS / ADMIN_API_KEYS_FILE) on a real service process: with keys on,
 * POST /v1/models/{id}/load|unload need an operator key (a tenant's key gets 403
 * `permission_denied` naming ADMIN_API_KEYS, and the model is untouched); an operator key works on
 * every other route too; the operator file is re-read on SIGHUP; wrong keys on the operator routes
 * count in the failed-auth limiter; no key reaches the log.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loopingGemmaPath, tinyGemmaPath } from '../helpers/models.ts';
import { spawnReadyService, stopService, type ServiceProcess } from '../helpers/process.ts';
import { recordSecrets } from '../helpers/test-logs.ts';
import type { ErrorEnvelope as Envelope } from '../../src/errors.ts';

const TENANT = 'tenant-key-0b9e41';
const ADMIN = 'operator-key-6a13f2';
const ROTATED = 'operator-key-rotated-93c7d0';
const WRONG = 'operator-key-wrong-11aa2b';

describe('operator keys for model load/unload (ADMIN_API_KEYS)', () => {
  let dir: string;
  let adminFile: string;
  let service: ServiceProcess;
  const post = (route: string, key?: string) => fetch(`${service.url}${route}`, { method: 'POST', headers: key ? { authorization: `Bearer ${key}` } : {} });
  const state = async () => ((await (await fetch(`${service.url}/v1/models`, { headers: { 'x-api-key': TENANT } })).json()) as { data: { id: string; state: string }[] }).data.find((m) => m.id === 'looper')?.state;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'operator-keys-'));
    const modelsFile = path.join(dir, 'models.json');
    fs.writeFileSync(modelsFile, JSON.stringify({ llm: [{ id: 'tiny', model: tinyGemmaPath(), context: 512, parallel: 1, threads: 1 }, { id: 'looper', model: loopingGemmaPath(), context: 512, parallel: 1, threads: 1, preload: false }], stt: [] }));
    adminFile = path.join(dir, 'admin-keys.txt');
    fs.writeFileSync(adminFile, `# operators\n${ADMIN}\n`);
    recordSecrets([TENANT, ADMIN, ROTATED, WRONG]);
    service = await spawnReadyService({ MODELS_FILE: modelsFile, API_KEY_ENABLED: 'true', API_KEYS: TENANT, ADMIN_API_KEYS_FILE: adminFile, AUTH_FAILURES_PER_MINUTE: '3', LOG_LEVEL: 'info', LLM_DEVICE: 'cpu', ENABLE_LOCAL_WHISPER: 'false', STT_BACKEND: 'local', TTS_BACKEND: 'embedded' });
  });
  after(async () => {
    await stopService(service);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("refuses a tenant's key on load and unload with 403 permission_denied naming ADMIN_API_KEYS; the model is untouched", async () => {
    for (const action of ['load', 'unload']) {
      const res = await post(`/v1/models/looper/${action}`, TENANT);
      assert.equal(res.status, 403, action);
      const { error } = (await res.json()) as Envelope;
      assert.equal(error.type, 'permission_error', action);
      assert.equal(error.code, 'permission_denied', action);
      assert.match(error.message, /ADMIN_API_KEYS/, action);
    }
    assert.equal(await state(), 'unloaded', 'the refused load did not load it');
    // no key at all is still a 401, as everywhere
    assert.equal((await post('/v1/models/looper/load')).status, 401);
  });

  it('lets an operator key load and unload, and accepts it on every other route as a key', async () => {
    const loaded = await post('/v1/models/looper/load', ADMIN);
    assert.equal(loaded.status, 200, await loaded.clone().text());
    assert.equal(((await loaded.json()) as { state: string }).state, 'loaded');
    const chat = await fetch(`${service.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'looper', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 5 }) });
    assert.equal(chat.status, 200);
    const unloaded = await post('/v1/models/looper/unload', ADMIN);
    assert.equal(unloaded.status, 200);
    assert.equal(((await unloaded.json()) as { state: string }).state, 'unloaded');
  });

  it('re-reads ADMIN_API_KEYS_FILE on SIGHUP: the old operator key stops working at once, the new one works', async () => {
    fs.writeFileSync(adminFile, `${ROTATED}\n`);
    const reloads = service.output().split('API keys reloaded').length;
    service.child.kill('SIGHUP');
    const deadline = Date.now() + 10_000;
    while (service.output().split('API keys reloaded').length === reloads && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal((await post('/v1/models/looper/load', ROTATED)).status, 200);
    assert.equal((await post('/v1/models/looper/unload', ADMIN)).status, 401, 'the removed operator key is no key at all');
  });

  it('counts wrong keys on the operator routes in the failed-auth limiter; the logs hold no key', async () => {
    let status = 0;
    for (let i = 0; i < 4 && status !== 429; i++) status = (await post('/v1/models/looper/unload', WRONG)).status;
    assert.equal(status, 429, 'blocked after AUTH_FAILURES_PER_MINUTE wrong keys');
    assert.equal((await post('/v1/models/looper/unload', ROTATED)).status, 429, 'a blocked address is refused even with the operator key');
    const out = service.output();
    assert.ok(![TENANT, ADMIN, ROTATED, WRONG].some((k) => out.includes(k)), 'no key in the log');
  });
});
