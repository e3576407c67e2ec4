/**
 * The sample clients in examples/ run against the real service (tiny models): JavaScript ones
 * and the standard-library Python ones for real; the Python ones that need the `websockets`
 * package are byte-compiled (it is not installed here).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { int16ToBytes } from '../../src/audio/pcm.ts';
import { wavHeader } from '../../src/audio/wav.ts';
import { startApp, type TestApp } from '../helpers/app.ts';
import { wav } from '../helpers/audio.ts';
import { decodeWithFfmpeg } from '../helpers/ffmpeg.ts';
import { tinyGemmaPath, tinyWhisperPath } from '../helpers/models.ts';
import { closeSpeech, speech } from '../helpers/speech.ts';

const run = promisify(execFile);
const lines = (stdout: string) => stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);

describe('sample clients (examples/)', () => {
  let t: TestApp;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  before(async () => {
    t = await startApp({ env: { GEMMA_MODEL: tinyGemmaPath(), LOCAL_WHISPER_MODEL: tinyWhisperPath(), STT_PARTIAL_INTERVAL_MS: '0' } });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'examples-'));
    env = { ...process.env, GEMMA_API_URL: t.url };
  });
  after(async () => {
    await t.close();
    await closeSpeech();
  });

  it('batch-transcribe.mjs and batch_transcribe.py: a folder, bounded concurrency, one JSON line per file', async () => {
    const folder = path.join(dir, 'recordings');
    fs.mkdirSync(folder);
    for (const name of ['a.wav', 'b.wav', 'c.wav']) fs.writeFileSync(path.join(folder, name), wav(2));
    fs.writeFileSync(path.join(folder, 'notes.txt'), 'not audio, skipped');
    for (const [cmd, script] of [
      [process.execPath, 'examples/batch-transcribe.mjs'],
      ['python3', 'examples/python/batch_transcribe.py'],
    ] as const) {
      const { stdout, stderr } = await run(cmd, [script, folder, '--concurrency', '2'], { env });
      // lines come as transcriptions finish (two at a time), so in either order
      const results = lines(stdout).sort((x, y) => String(x.file).localeCompare(String(y.file)));
      assert.deepEqual(results.map((r) => [r.file, r.status, r.text]), ['a.wav', 'b.wav', 'c.wav'].map((f) => [f, 200, 'Hello from the tiny whisper model.']), script);
      assert.match(stderr, /3\/3 done, 0 failed/);
    }
  });

  it('stt-websocket.mjs: streams a WAV into /ws/stt and prints the final transcript', async () => {
    const pcm = await speech([{ silence: 0.3 }, 'Streaming from a file.', { silence: 0.8 }]);
    const file = path.join(dir, 'speech.wav');
    fs.writeFileSync(file, Buffer.concat([wavHeader(16000, pcm.length * 2), int16ToBytes(pcm)]));
    const { stdout } = await run(process.execPath, ['examples/stt-websocket.mjs', file, '--fast'], { env: { ...env, GEMMA_API_URL: t.wsUrl } });
    const finals = lines(stdout);
    assert.ok(finals.length >= 1);
    assert.match(finals[0]!.text as string, /Hello from the tiny whisper model/);
  });

  it('dialogue-turn.mjs and dialogue_turn.py: a turn, its reply and its speech', async () => {
    for (const [cmd, script] of [
      [process.execPath, 'examples/dialogue-turn.mjs'],
      ['python3', 'examples/python/dialogue_turn.py'],
    ] as const) {
      const out = path.join(dir, `${path.basename(script)}.wav`);
      const { stdout } = await run(cmd, [script, 'Hello there!', '--session', 'examples', '--out', out], { env });
      const [turn] = lines(stdout);
      assert.equal(turn!.reply, 'Hello from the tiny Gemma model.', script);
      assert.equal(turn!.session_id, 'examples');
      assert.ok(decodeWithFfmpeg(fs.readFileSync(out)).seconds > 1);
    }
    const history = (await (await fetch(`${t.url}/v1/sessions/examples`)).json()) as { turns: unknown[] };
    assert.equal(history.turns.length, 4, 'the two clients continued one conversation');
  });

  it('the websocket Python clients byte-compile', async () => {
    const cache = path.join(dir, 'pycache');
    for (const script of fs.readdirSync('examples/python').filter((f) => f.endsWith('.py'))) {
      await run('python3', ['-m', 'py_compile', path.join('examples/python', script)], { env: { ...process.env, PYTHONPYCACHEPREFIX: cache } });
    }
  });
});
