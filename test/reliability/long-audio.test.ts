/**
 * Hour-long audio on a real service process (tiny models): a 1 h FLAC of silence with a 0.5 s tone
 * every 5 minutes is ~700 KB on the wire and 230 MB decoded (16 kHz float32). With `vad_filter`
 * the speech-region analysis walks all 57.6 M samples on the gateway: /health must keep answering
 * meanwhile (before the fix one such file stalled it 3+ s). The decoded audio all requests hold at
 * once is bounded by MAX_AUDIO_IN_FLIGHT_SECONDS: reserved as decoding proceeds, refused past it
 * with 503 `audio_budget_exceeded`, and given back when each request ends, whatever its outcome.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { HealthProber } from '../helpers/health-prober.ts';
import { startProbedTinyService, type ProbedService } from '../helpers/tiny-service.ts';

/** `seconds` of digital silence with a 0.5 s 300 Hz tone every 300 s, as FLAC (ffmpeg). */
function sparseFlac(seconds = 3600): Buffer {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sparse-'));
  const out = path.join(dir, 'sparse.flac');
  const made = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', `sine=frequency=300:sample_rate=16000:duration=${seconds}`, '-af', "volume=volume=0:enable='gte(mod(t,300),0.5)'", '-c:a', 'flac', '-y', out]);
  if (made.status !== 0) throw new Error(`ffmpeg is needed for this test: ${made.stderr?.toString()}`);
  const flac = fs.readFileSync(out);
  fs.rmSync(dir, { recursive: true, force: true });
  return flac;
}

describe('hour-long audio on a real service process', () => {
  let running: ProbedService | undefined;
  let url = '';
  let flac: Buffer;

  before(async () => {
    flac = sparseFlac();
    running = await startProbedTinyService({ MAX_AUDIO_SECONDS: '3600', LOG_LEVEL: 'info' });
    url = running.service.url;
    await running.prober.stop();
  });

  after(async () => {
    await running?.stop();
  });

  async function transcribe(fields: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
    const form = new FormData();
    form.append('file', new Blob([flac]), 'sparse.flac');
    form.append('response_format', 'verbose_json');
    for (const [k, v] of Object.entries(fields)) form.append(k, v);
    const res = await fetch(`${url}/v1/audio/transcriptions`, { method: 'POST', body: form });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  it('vad_filter on an hour of sparse audio keeps /health answering (the region analysis yields)', async () => {
    const prober = new HealthProber(url);
    prober.start();
    const res = await transcribe({ vad_filter: 'true' });
    const stats = await prober.stop();
    console.log(`# 1 h sparse FLAC, vad_filter: /health ${stats.count}× p50 ${stats.p50.toFixed(1)} ms, max ${stats.max.toFixed(0)} ms`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.ok(Number(res.body.duration) > 3599, `duration ${String(res.body.duration)}`);
    // the tone every 5 min is found: segments lie in the original hour, not at the packed buffer's start
    const segments = res.body.segments as { start: number }[];
    assert.ok(segments.length > 0 && segments.every((s) => s.start < 3600), JSON.stringify(segments.slice(0, 3)));
    assert.equal(stats.failures, 0);
    assert.ok(stats.count > 5, 'the prober ran');
    // generous for a shared machine; the unyielding scan stalled /health 3+ s on one such file
    assert.ok(stats.max < 1000, `/health took ${stats.max.toFixed(0)} ms at worst`);
  });
});

describe('MAX_AUDIO_IN_FLIGHT_SECONDS on a real service process', () => {
  let running: ProbedService | undefined;
  let url = '';
  const files: Record<string, Buffer> = {};

  before(async () => {
    files.hour = sparseFlac(3600);
    files.twenty = sparseFlac(1200);
    // an hour is allowed per request, but only 30 minutes of decoded audio at once in all
    running = await startProbedTinyService({ MAX_AUDIO_SECONDS: '3600', MAX_AUDIO_IN_FLIGHT_SECONDS: '1800', LOG_LEVEL: 'info' });
    url = running.service.url;
    await running.prober.stop();
  });

  after(async () => {
    await running?.stop();
  });

  function post(file: Buffer, signal?: AbortSignal): Promise<Response> {
    const form = new FormData();
    form.append('file', new Blob([file]), 'sparse.flac');
    form.append('vad_filter', 'true');
    return fetch(`${url}/v1/audio/transcriptions`, { method: 'POST', body: form, signal });
  }

  async function held(): Promise<number> {
    const text = await (await fetch(`${url}/metrics`)).text();
    const line = text.split('\n').find((l) => /^\w*audio_decoded_seconds_in_flight /.test(l));
    assert.ok(line, 'the gauge is exported');
    return Number(line.split(' ')[1]);
  }

  /** Waits (generously) for every reservation to be given back. */
  async function drained(): Promise<void> {
    const deadline = Date.now() + 30_000;
    while ((await held()) !== 0) {
      assert.ok(Date.now() < deadline, `decoded audio still held: ${await held()} s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  it('an hour of audio past a 30-minute budget is refused with 503 audio_budget_exceeded, and the budget is given back', async () => {
    const res = await post(files.hour!);
    const body = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(res.status, 503, JSON.stringify(body));
    assert.equal(body.error.code, 'audio_budget_exceeded');
    assert.match(body.error.message, /MAX_AUDIO_IN_FLIGHT_SECONDS/);
    assert.ok(Number(res.headers.get('retry-after')) > 0, 'Retry-After');
    await drained();
  });

  it('20 minutes fit: 200, and the reservation is released after the answer and after a client that left', async () => {
    const res = await post(files.twenty!);
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(((await res.json()) as { text: string }).text.length > 0, true);
    await drained();
    // a client that leaves mid-request: its share comes back too
    const controller = new AbortController();
    const pending = post(files.twenty!, controller.signal).catch(() => undefined);
    const deadline = Date.now() + 30_000;
    while ((await held()) === 0 && Date.now() < deadline) await new Promise((r) => setImmediate(r));
    controller.abort();
    await pending;
    await drained();
    // and the budget is whole again: 20 minutes still fit
    assert.equal((await post(files.twenty!)).status, 200);
    await drained();
  });
});
