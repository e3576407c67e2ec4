/** `npm run pull` downloads the configured models into the Hugging Face cache (hub stand-in). */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { startFakeHub } from '../fakes/hf-hub.ts';
import { tinyGemmaPath, tinyWhisperPath } from '../helpers/models.ts';

describe('npm run pull', () => {
  it('downloads GEMMA_MODEL and LOCAL_WHISPER_MODEL, then finds them cached offline', async () => {
    const hub = await startFakeHub({
      'org/tiny-GGUF/tiny.gguf': fs.readFileSync(tinyGemmaPath()),
      'ggerganov/whisper.cpp/ggml-tiny.en.bin': fs.readFileSync(tinyWhisperPath()),
    });
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'pull-'));
    const env = { PATH: process.env.PATH ?? '', HOME: home, HF_HOME: home, GEMMA_MODEL: 'hf:org/tiny-GGUF/tiny.gguf', LOCAL_WHISPER_MODEL: 'tiny.en', LOG_LEVEL: 'warn' };
    try {
      // asynchronously: the hub stand-in lives in this process and must keep answering
      const pull = (endpoint: string) =>
        new Promise<{ status: number; stdout: string; stderr: string }>((resolve) =>
          execFile(process.execPath, ['--import', 'tsx', 'scripts/pull.ts'], { env: { ...env, HF_ENDPOINT: endpoint } }, (error, stdout, stderr) =>
            resolve({ status: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
          ),
        );
      const first = await pull(hub.url);
      assert.equal(first.status, 0, first.stderr);
      assert.match(first.stdout, /GEMMA_MODEL hf:org\/tiny-GGUF\/tiny.gguf -> .*models--org--tiny-GGUF\/snapshots\/.*\/tiny.gguf/);
      assert.match(first.stdout, /LOCAL_WHISPER_MODEL tiny.en -> .*models--ggerganov--whisper.cpp\/snapshots\/.*\/ggml-tiny.en.bin/);
      await hub.close();
      const offline = await pull('http://127.0.0.1:9');
      assert.equal(offline.status, 0, offline.stderr);
    } finally {
      await hub.close().catch(() => undefined);
    }
  });
});
