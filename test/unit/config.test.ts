import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { configSchema, loadConfig, readEnvironment } from '../../src/config.ts';
import { configProblems } from '../helpers/config.ts';

describe('config', () => {
  it('parses an empty environment to the documented defaults', () => {
    const config = loadConfig({});
    assert.equal(config.PORT, 6666);
    assert.equal(config.HOST, '0.0.0.0');
    assert.equal(config.LOG_LEVEL, 'info');
    assert.equal(config.REQUEST_ID_HEADER, 'X-Request-ID');
    assert.equal(config.API_KEY_ENABLED, false);
    assert.equal(config.API_KEY_HEADER_NAME, 'X-API-Key');
    assert.deepEqual(config.API_KEYS, []);
    assert.equal(config.OPENAI_API_BASE, 'https://api.openai.com/v1');
    assert.equal(config.OPENAI_WHISPER_MODEL, 'gpt-4o-mini-transcribe');
    assert.equal(config.OPENAI_WHISPER_RESPONSE_FORMAT, 'json');
    assert.equal(config.ENABLE_LOCAL_WHISPER, true);
    assert.equal(config.OPENAUDIO_API_BASE, 'http://localhost:8080');
    assert.equal(config.OPENAUDIO_TTS_PATH, '/v1/tts');
    assert.equal(config.OPENAUDIO_DEFAULT_FORMAT, 'wav');
    assert.equal(config.OPENAUDIO_DEFAULT_NORMALIZE, true);
    assert.equal(config.OPENAUDIO_TIMEOUT_SECONDS, 60);
    assert.equal(config.OPENAUDIO_MAX_RETRIES, 2);
    assert.equal(config.DEFAULT_AUDIO_SAMPLE_RATE, 24000);
    assert.deepEqual(config.STT_BACKEND, ['local', 'openai']);
    assert.deepEqual(config.TTS_BACKEND, ['openaudio', 'embedded']);
  });

  it('gives every variable a description (the docs/configuration.md table is built from them)', () => {
    const json = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as { properties: Record<string, { description?: string }> };
    const missing = Object.entries(json.properties).filter(([, p]) => !p.description).map(([k]) => k);
    assert.deepEqual(missing, []);
  });

  it('reads every variable it is given', () => {
    const config = loadConfig({
      PORT: '7000',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'DEBUG',
      REQUEST_ID_HEADER: 'X-Correlation-ID',
      API_KEY_ENABLED: 'yes',
      API_KEY_HEADER_NAME: 'X-Key',
      API_KEYS: ' k1 , k2,,',
      OPENAI_API_KEY: 'sk-test',
      OPENAI_API_BASE: 'http://127.0.0.1:9000/v1/',
      OPENAI_WHISPER_MODEL: 'whisper-1',
      OPENAI_WHISPER_RESPONSE_FORMAT: 'VERBOSE_JSON',
      ENABLE_LOCAL_WHISPER: '0',
      LOCAL_WHISPER_MODEL: 'tiny.en',
      OPENAUDIO_API_BASE: 'http://fish:8080',
      OPENAUDIO_API_KEY: 'fish-key',
      OPENAUDIO_TTS_PATH: '/v1/tts',
      OPENAUDIO_DEFAULT_FORMAT: 'mp3',
      OPENAUDIO_DEFAULT_REFERENCE_ID: 'alice',
      OPENAUDIO_DEFAULT_NORMALIZE: 'off',
      OPENAUDIO_TIMEOUT_SECONDS: '2.5',
      OPENAUDIO_MAX_RETRIES: '0',
      DEFAULT_AUDIO_SAMPLE_RATE: '16000',
      STT_BACKEND: 'openai, local',
      TTS_BACKEND: 'embedded',
    });
    assert.equal(config.PORT, 7000);
    assert.equal(config.LOG_LEVEL, 'debug');
    assert.equal(config.REQUEST_ID_HEADER, 'X-Correlation-ID');
    assert.equal(config.API_KEY_ENABLED, true);
    assert.deepEqual(config.API_KEYS, ['k1', 'k2']);
    assert.equal(config.OPENAI_API_BASE, 'http://127.0.0.1:9000/v1');
    assert.equal(config.OPENAI_WHISPER_RESPONSE_FORMAT, 'verbose_json');
    assert.equal(config.ENABLE_LOCAL_WHISPER, false);
    assert.equal(config.OPENAUDIO_DEFAULT_NORMALIZE, false);
    assert.equal(config.OPENAUDIO_TIMEOUT_SECONDS, 2.5);
    assert.equal(config.OPENAUDIO_DEFAULT_REFERENCE_ID, 'alice');
    assert.deepEqual(config.STT_BACKEND, ['openai', 'local']);
    assert.deepEqual(config.TTS_BACKEND, ['embedded']);
  });

  it('treats empty values as unset', () => {
    assert.equal(loadConfig({ PORT: '', API_KEYS: '' }).PORT, 6666);
  });

  it('lists every problem at once, not only the first', () => {
    const problems = configProblems({
      PORT: 'eighty',
      LOG_LEVEL: 'loud',
      API_KEY_ENABLED: 'maybe',
      OPENAUDIO_API_BASE: 'not a url',
      OPENAUDIO_MAX_RETRIES: '-1',
      STT_BACKEND: 'local,cloud',
      REQUEST_ID_HEADER: 'bad header!',
    });
    const names = problems.map((p) => p.split(':')[0] ?? '');
    for (const name of ['PORT', 'LOG_LEVEL', 'API_KEY_ENABLED', 'OPENAUDIO_API_BASE', 'OPENAUDIO_MAX_RETRIES', 'STT_BACKEND', 'REQUEST_ID_HEADER']) {
      assert.ok(names.some((n) => n.startsWith(name)), `${name} missing from ${JSON.stringify(problems)}`);
    }
    assert.match(problems.join('\n'), /PORT: must be an integer \(got "eighty"\)/);
  });

  it('refuses API_KEY_ENABLED=true without keys, alongside field errors', () => {
    const problems = configProblems({ API_KEY_ENABLED: 'true', PORT: '99999' });
    assert.equal(problems.length, 2);
    assert.match(problems.join('\n'), /API_KEYS: API_KEY_ENABLED=true needs at least one key/);
    assert.match(problems.join('\n'), /PORT/);
  });

  it('accepts keys from API_KEYS_FILE and refuses a missing file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfg-'));
    const file = path.join(dir, 'keys');
    fs.writeFileSync(file, 'k9\n');
    assert.equal(loadConfig({ API_KEY_ENABLED: 'true', API_KEYS_FILE: file }).API_KEYS_FILE, file);
    assert.match(configProblems({ API_KEYS_FILE: path.join(dir, 'nope') }).join(), /API_KEYS_FILE: file not found/);
  });

  it('never echoes secret values in problems', () => {
    const problems = configProblems({ OPENAI_API_KEY: 'sk-secret', PORT: 'x', OPENAUDIO_API_BASE: 'sk-secret-url' });
    assert.doesNotMatch(problems.join('\n'), /sk-secret\b(?!-url)/);
  });

  it('requires LLM_MODEL for the remote LLM backend', () => {
    assert.match(configProblems({ LLM_BACKEND: 'openai' }).join(), /LLM_MODEL/);
  });

  it('reads a .env file under the real environment', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfg-'));
    const file = path.join(dir, '.env');
    fs.writeFileSync(file, 'PORT=7100\nHOST=127.0.0.2\n');
    const env = readEnvironment({ HOST: '127.0.0.3' }, file);
    const config = loadConfig(env);
    assert.equal(config.PORT, 7100);
    assert.equal(config.HOST, '127.0.0.3');
  });
});
