/**
 * `npm run pull` (scripts/pull.ts) as a process, against a local stand-in for the Hugging Face hub:
 * every local model of MODELS_FILE, or one by id or alias, with progress; models served remotely
 * are skipped; an unknown name fails listing the ids.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startFakeHub, type FakeHub } from '../fakes/hf-hub.ts';
import { tinyGemmaPath, tinyWhisperPath } from '../helpers/models.ts';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describe('npm run pull with a models file', () => {
  let hub: FakeHub;
  let dir: string;
  let gguf: Buffer;
  /** Runs the script in a process of its own; async, so the fake hub in this process keeps answering. */
  const pull = (home: string, ...names: string[]) =>
    new Promise<Run>((resolve) => {
      const env = { ...process.env, MODELS_FILE: path.join(dir, 'models.json'), HF_ENDPOINT: hub.url, HF_HOME: home, LOG_LEVEL: 'info' };
      execFile(process.execPath, ['--import', 'tsx', 'scripts/pull.ts', ...names], { env, timeout: 120_000 }, (error, stdout, stderr) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });

  before(async () => {
    gguf = fs.readFileSync(tinyGemmaPath());
    hub = await startFakeHub({ 'org/repo/small.gguf': gguf });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pull-'));
    fs.writeFileSync(
      path.join(dir, 'models.json'),
      JSON.stringify({
        llm: [
          { id: 'small', aliases: ['s'], model: 'hf:org/repo/small.gguf' },
          { id: 'remote', backend: 'openai', base_url: 'http://127.0.0.1:9/v1', model: 'gpt-4o-mini' },
        ],
        stt: [{ id: 'whisper', model: tinyWhisperPath() }],
      }),
    );
  });
  after(async () => {
    await hub.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('pulls one model by alias into the Hugging Face cache, with progress', async () => {
    const home = path.join(dir, 'home-one');
    const run = await pull(home, 's');
    assert.equal(run.code, 0, run.stderr);
    const line = run.stdout.split('\n').find((l) => l.startsWith('small '));
    assert.ok(line, run.stdout);
    const file = line.split(' -> ')[1]!;
    assert.ok(file.startsWith(home), file);
    assert.deepEqual(fs.readFileSync(file), gguf);
    assert.match(run.stderr, /model download progress|model download complete/);
    assert.ok(!run.stdout.includes('whisper'), 'only the model named');
  });

  it('pulls every local model of the file (the remote one has nothing to pull)', async () => {
    const run = await pull(path.join(dir, 'home-all'));
    assert.equal(run.code, 0, run.stderr);
    const ids = run.stdout.split('\n').filter(Boolean).map((l) => l.split(' ')[0]);
    assert.deepEqual(ids, ['small', 'whisper']);
  });

  it('fails on an unknown name, listing the ids, before downloading anything', async () => {
    const hits = hub.hits.length;
    const run = await pull(path.join(dir, 'home-none'), 'nope');
    assert.equal(run.code, 1);
    assert.match(run.stderr, /Unknown model 'nope'; models to pull: small, whisper/);
    assert.equal(hub.hits.length, hits);
  });
});
