/**
 * Transcription jobs in one process (no REDIS_URL: the in-process queue), on the real app with
 * the tiny whisper model: submit (multipart streamed to storage, JSON), poll, SSE, cancel, forget,
 * list, tenancy (API keys on), limits and hostile input, webhooks (allow-list, HMAC signature).
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TINY_WHISPER_TEXT } from '../../scripts/models/tiny-whisper.ts';
import { startApp, type TestApp } from '../helpers/app.ts';
import { wav } from '../helpers/audio.ts';
import { getJob, JOBS, readSse, submitJob, waitJob, type JobView } from '../helpers/jobs.ts';
import { tinyWhisperPath } from '../helpers/models.ts';
import { freePort } from '../helpers/process.ts';

const A = { 'X-API-Key': 'jobs-key-a' };
const B = { 'X-API-Key': 'jobs-key-b' };
const SECRET = 'webhook-secret-for-tests';

describe('transcription jobs (in-process queue)', () => {
  let t: TestApp;
  let dir: string;
  let hookPort: number;
  let hook: http.Server;
  const hooks: { headers: http.IncomingHttpHeaders; body: string }[] = [];

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jobs-'));
    hookPort = await freePort();
    hook = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        hooks.push({ headers: req.headers, body });
        res.end('ok');
      });
    });
    await new Promise<void>((r) => hook.listen(hookPort, '127.0.0.1', r));
    t = await startApp({
      env: {
        LOCAL_WHISPER_MODEL: tinyWhisperPath(),
        GEMMA_MODEL: '/absent.gguf',
        API_KEY_ENABLED: 'true',
        API_KEYS: 'jobs-key-a,jobs-key-b',
        JOB_STORAGE_DIR: dir,
        JOB_MAX_UPLOAD_BYTES: '3000000',
        MAX_UPLOAD_BYTES: '3000000',
        MAX_AUDIO_SECONDS: '120',
        JOB_WEBHOOK_ALLOWED_HOSTS: `127.0.0.1:${hookPort},169.254.169.254`,
        JOB_WEBHOOK_SECRET: SECRET,
      },
    });
  });
  after(async () => {
    await t?.close();
    hook?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('/health/ready says the queue is in-process and not durable', async () => {
    const res = await fetch(`${t.url}/health/ready`);
    const body = (await res.json()) as { jobs: unknown };
    assert.deepEqual(body.jobs, { queue: 'memory', durable: false, worker: true });
  });

  it('hostile or bad submissions are refused with the envelope, and leave nothing in storage', async () => {
    const tooBig = await submitJob(t.url, Buffer.concat([wav(1), Buffer.alloc(3_100_000)]), {}, A);
    assert.equal(tooBig.status, 413);
    assert.equal(tooBig.body.error?.code, 'audio_too_large');
    assert.match(tooBig.body.error!.message, /JOB_MAX_UPLOAD_BYTES/);
    const garbage = await submitJob(t.url, Buffer.from('this is not audio at all, just text'), {}, A);
    assert.equal(garbage.status, 415);
    const badFormat = await submitJob(t.url, wav(1), { response_format: 'docx' }, A);
    assert.equal(badFormat.status, 400);
    assert.equal(badFormat.body.error?.code, 'invalid_value');
    const otherHost = await submitJob(t.url, wav(1), { webhook_url: 'https://evil.example.com/hook' }, A);
    assert.equal(otherHost.status, 400);
    assert.equal(otherHost.body.error?.code, 'webhook_not_allowed');
    // on the list, but a link-local (cloud metadata) address is never called
    const metadata = await submitJob(t.url, wav(1), { webhook_url: 'http://169.254.169.254/latest' }, A);
    assert.equal(metadata.status, 400);
    assert.equal(metadata.body.error?.code, 'webhook_not_allowed');
    const noKey = await submitJob(t.url, wav(1));
    assert.equal(noKey.status, 401);
    assert.equal((await fetch(`${t.url}${JOBS}/${'x'.repeat(500)}`, { headers: A })).status, 400);
    assert.equal((await fetch(`${t.url}${JOBS}/..%2F..%2Fetc`, { headers: A })).status, 404);
    assert.equal((await fetch(`${t.url}${JOBS}/job_${'0'.repeat(24)}`, { headers: A })).status, 404);
    const leftovers = fs.readdirSync(dir, { recursive: true }).filter((f) => String(f).includes('job_'));
    assert.deepEqual(leftovers, [], 'refused jobs leave no files');
  });

  it('a 35 s file: 202, SSE progress and segments, webhook signed, result equal to the synchronous route', async () => {
    const audio = wav(35);
    const submitted = await submitJob(t.url, audio, { response_format: 'verbose_json', 'timestamp_granularities[]': 'word', webhook_url: `http://127.0.0.1:${hookPort}/done` }, A);
    assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
    assert.equal(submitted.body.status, 'queued');
    const { id } = submitted.body;

    // a second job queues behind it (JOB_CONCURRENCY=1), sent as JSON (40 s: 1.7 MB of base64, over MAX_BODY_BYTES'
    // 1 MiB default but within MAX_UPLOAD_BYTES, as documented), and is cancelled before it runs
    const queued = await fetch(`${t.url}${JOBS}`, { method: 'POST', headers: { ...A, 'content-type': 'application/json' }, body: JSON.stringify({ audio_base64: wav(40).toString('base64') }) });
    assert.equal(queued.status, 202, await queued.clone().text());
    const queuedId = ((await queued.json()) as { id: string }).id;
    const cancel = await fetch(`${t.url}${JOBS}/${queuedId}`, { method: 'DELETE', headers: A });
    assert.equal(cancel.status, 200);
    assert.equal(((await cancel.json()) as { status: string }).status, 'cancelled');

    // another key sees none of it
    assert.equal((await getJob(t.url, id, B)).status, 404);
    assert.equal((await fetch(`${t.url}${JOBS}/${id}/events`, { headers: B })).status, 404);
    assert.equal((await fetch(`${t.url}${JOBS}/${id}`, { method: 'DELETE', headers: B })).status, 404);
    const listB = (await (await fetch(`${t.url}${JOBS}`, { headers: B })).json()) as { data: unknown[] };
    assert.deepEqual(listB.data, []);

    const events = await readSse(await fetch(`${t.url}${JOBS}/${id}/events`, { headers: A }));
    const progress = events.filter((e) => e.event === 'progress').map((e) => (e.data as { windows_done: number }).windows_done);
    assert.ok(progress.length >= 1, JSON.stringify(events));
    assert.deepEqual(progress, [...progress].sort((x, y) => x - y), 'progress never goes back');
    assert.equal(progress.at(-1), 2);
    const segments = events.filter((e) => e.event === 'segment').map((e) => e.data as { id: number; start: number; text: string });
    assert.deepEqual(segments.map((s) => s.id), segments.map((_, i) => i), 'every segment once, in order');
    assert.ok(segments.some((s) => s.start >= 30), 'the second window is on the file\'s timeline');
    assert.equal(events.at(-1)!.event, 'done');
    assert.equal((events.at(-1)!.data as { status: string }).status, 'completed');

    const job = await waitJob(t.url, id, A);
    assert.equal(job.status, 'completed');
    assert.deepEqual(job.progress, { audio_seconds_done: 35, audio_seconds_total: 35, windows_done: 2, windows_total: 2 });
    const form = new FormData();
    form.set('file', new Blob([audio]), 'long.wav');
    form.set('response_format', 'verbose_json');
    form.set('timestamp_granularities[]', 'word');
    const sync = await fetch(`${t.url}/v1/audio/transcriptions`, { method: 'POST', body: form, headers: A });
    assert.equal(sync.status, 200);
    assert.deepEqual(job.result, await sync.json(), 'the job\'s transcript is the synchronous route\'s');
    assert.ok((job.result as { text: string }).text.startsWith(TINY_WHISPER_TEXT));
    assert.deepEqual(job.segments.map((s) => [s.start, s.text]), segments.map((s) => [s.start, s.text]), 'the events carried the job\'s segments');

    // metrics: jobs by final state, audio seconds, duration, queue depth
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    const value = (line: RegExp) => Number(line.exec(metrics)?.[1] ?? NaN);
    assert.ok(value(/^transcription_jobs_finished_total\{status="completed"\} (\S+)$/m) >= 1, metrics);
    assert.ok(value(/^transcription_jobs_finished_total\{status="cancelled"\} (\S+)$/m) >= 1);
    assert.ok(value(/^transcription_job_audio_seconds_total (\S+)$/m) >= 35);
    assert.ok(value(/^transcription_job_duration_seconds_count\{status="completed"\} (\S+)$/m) >= 1);
    assert.equal(value(/^transcription_job_queue_depth\{state="waiting"\} (\S+)$/m), 0);

    // the webhook: delivered once, signed over the timestamp and the exact body
    for (let i = 0; i < 100 && hooks.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(hooks.length, 1);
    const [delivery] = hooks;
    const sig = String(delivery!.headers['x-webhook-signature']);
    const [, ts, v1] = /^t=(\d+),v1=([a-f0-9]{64})$/.exec(sig)!;
    assert.equal(v1, createHmac('sha256', SECRET).update(`${ts}.${delivery!.body}`).digest('hex'));
    const payload = JSON.parse(delivery!.body) as { type: string; data: { id: string; status: string } };
    assert.deepEqual([payload.type, payload.data.id, payload.data.status], ['transcription.job.completed', id, 'completed']);

    // listing: both jobs, newest first, paginated
    const page1 = (await (await fetch(`${t.url}${JOBS}?limit=1`, { headers: A })).json()) as { data: { id: string }[]; has_more: boolean; last_id: string };
    assert.deepEqual([page1.data.map((j) => j.id), page1.has_more], [[queuedId], true]);
    const page2 = (await (await fetch(`${t.url}${JOBS}?limit=1&after=${page1.last_id}`, { headers: A })).json()) as { data: { id: string }[]; has_more: boolean };
    assert.deepEqual([page2.data.map((j) => j.id), page2.has_more], [[id], false]);

    // a finished job is forgotten with its files
    assert.equal((await fetch(`${t.url}${JOBS}/${id}`, { method: 'DELETE', headers: A })).status, 204);
    assert.equal((await getJob(t.url, id, A)).status, 404);
    assert.equal(fs.readdirSync(dir, { recursive: true }).some((f) => String(f).includes(id)), false);
  });

  it('a running job cancelled stops at the end of its window; a client leaving its event stream ends the stream', async () => {
    const { status, body } = await submitJob(t.url, wav(90), {}, A);
    assert.equal(status, 202);
    await waitJob(t.url, body.id, A, (j) => j.status === 'running');
    // a subscriber that vanishes after the first event: the server ends the stream (no poller left behind)
    const leaving = new AbortController();
    const events = await fetch(`${t.url}${JOBS}/${body.id}/events`, { headers: A, signal: leaving.signal });
    await events.body!.getReader().read();
    leaving.abort();
    const ended = () => t.logs.some((l) => l.includes(body.id) && l.includes('the client left; stream stopped'));
    for (let i = 0; i < 100 && !ended(); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(ended(), 'the event stream ended when its client left');
    const res = await fetch(`${t.url}${JOBS}/${body.id}`, { method: 'DELETE', headers: A });
    assert.equal(res.status, 200);
    const job = await waitJob(t.url, body.id, A);
    assert.equal(job.status, 'cancelled');
    assert.ok(job.progress.windows_done < 3, `stopped early: ${JSON.stringify(job.progress)}`);
    assert.ok(job.expires_at !== null);
  });

  it('a job cancelled during its last window ends cancelled: no result, its events and webhook say cancelled', async () => {
    const { status, body } = await submitJob(t.url, wav(35), { webhook_url: `http://127.0.0.1:${hookPort}/last` }, A);
    assert.equal(status, 202);
    // the first window checkpointed, the second (the last) transcribing: no check before a next window is left
    await waitJob(t.url, body.id, A, (j) => j.status === 'running' && j.progress.windows_done === 1);
    const events = readSse(await fetch(`${t.url}${JOBS}/${body.id}/events`, { headers: A }));
    const res = await fetch(`${t.url}${JOBS}/${body.id}`, { method: 'DELETE', headers: A });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { status: string }).status, 'running');
    const job = await waitJob(t.url, body.id, A);
    assert.equal(job.status, 'cancelled', `a cancel answered "running" ends the job cancelled: ${JSON.stringify(job.progress)}`);
    assert.equal(job.result, undefined);
    assert.equal(fs.readdirSync(dir, { recursive: true }).some((f) => String(f).endsWith(path.join(body.id, 'result.json'))), false, 'no result stored');
    const done = (await events).at(-1)!;
    assert.deepEqual([done.event, (done.data as { status: string }).status], ['done', 'cancelled']);
    const delivered = () => hooks.filter((h) => h.body.includes(body.id)).map((h) => (JSON.parse(h.body) as { type: string }).type);
    for (let i = 0; i < 100 && delivered().length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(delivered(), ['transcription.job.cancelled']);
  });

  it('a DELETE racing the job\'s end: its answer and the job\'s final state agree, wherever it lands', async () => {
    // how long a short job runs here (the shorter of two: the first may warm the engine up), then
    // DELETEs spread over that time and past it: some land while it transcribes, some in the instant
    // it completes, some after
    let runMs = Infinity;
    for (let i = 0; i < 2; i++) {
      const probe = await submitJob(t.url, wav(8), {}, A);
      const job = (await waitJob(t.url, probe.body.id, A)) as JobView & { timings: { running_seconds: number } };
      assert.equal(job.status, 'completed');
      runMs = Math.min(runMs, job.timings.running_seconds * 1000);
    }
    const outcomes: string[] = [];
    for (const fraction of [0, 0.25, 0.5, 0.7, 0.8, 0.85, 0.9, 0.95, 1, 1.05, 1.1, 1.3]) {
      const { body } = await submitJob(t.url, wav(8), {}, A);
      await waitJob(t.url, body.id, A, (j) => j.status !== 'queued');
      await new Promise((r) => setTimeout(r, fraction * runMs));
      const res = await fetch(`${t.url}${JOBS}/${body.id}`, { method: 'DELETE', headers: A });
      if (res.status === 200) {
        // accepted as a cancel: the job ends cancelled, without a result
        const answered = ((await res.json()) as { status: string }).status;
        assert.ok(['running', 'cancelled'].includes(answered), answered);
        const job = await waitJob(t.url, body.id, A);
        assert.deepEqual([job.status, job.result], ['cancelled', undefined], `DELETE answered 200 ${answered} at ${fraction} of the run, the job ended ${job.status}`);
        outcomes.push('cancelled');
      } else {
        // finished before the cancel: forgotten, as a finished job's DELETE is
        assert.equal(res.status, 204, await res.text());
        assert.equal((await getJob(t.url, body.id, A)).status, 404);
        outcomes.push('forgotten');
      }
    }
    assert.ok(outcomes.includes('cancelled'), `some DELETEs landed while the job ran: ${outcomes}`);
  });

  it('a DELETE racing the worker that takes a queued job up: the job ends once, and is told once (one webhook, one count)', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) {
      const { body } = await submitJob(t.url, wav(2), { webhook_url: `http://127.0.0.1:${hookPort}/race` }, A);
      ids.push(body.id);
      // at once: the worker may be reading the queued record as the cancel ends it
      assert.equal((await fetch(`${t.url}${JOBS}/${body.id}`, { method: 'DELETE', headers: A })).status, 200);
    }
    for (const id of ids) assert.equal((await waitJob(t.url, id, A)).status, 'cancelled');
    const told = (id: string) => hooks.filter((h) => h.body.includes(id)).length;
    for (let i = 0; i < 100 && ids.some((id) => told(id) === 0); i++) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 1000)); // room for a second webhook to arrive, if one were sent
    assert.deepEqual(ids.map(told), ids.map(() => 1));
  });

  it('undecodable audio fails the job with the decoder\'s envelope', async () => {
    const broken = wav(2);
    broken.writeUInt16LE(99, 20); // an unknown WAV encoding
    const { status, body } = await submitJob(t.url, broken, {}, A);
    assert.equal(status, 202);
    const job = await waitJob(t.url, body.id, A);
    assert.equal(job.status, 'failed');
    assert.ok(job.error && job.error.code, JSON.stringify(job.error));
  });
});

describe('transcription jobs: expiry', () => {
  it('a finished job and its files are deleted JOB_RESULT_TTL_SECONDS after it finished', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jobs-ttl-'));
    // no STT engine: the job fails at once, which is a finished job like any other
    const t = await startApp({ env: { ENABLE_LOCAL_WHISPER: 'false', STT_BACKEND: 'local', GEMMA_MODEL: '/absent.gguf', JOB_STORAGE_DIR: dir, JOB_RESULT_TTL_SECONDS: '2' } });
    try {
      const { status, body } = await submitJob(t.url, wav(1));
      assert.equal(status, 202);
      const job = await waitJob(t.url, body.id);
      assert.equal(job.status, 'failed');
      assert.ok(job.expires_at !== null);
      for (let i = 0; i < 200 && fs.readdirSync(path.join(dir, 'shared')).includes(body.id); i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal((await getJob(t.url, body.id)).status, 404);
      assert.deepEqual(fs.readdirSync(path.join(dir, 'shared')), [], 'its files are gone');
    } finally {
      await t.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('storage that cannot be written: the service starts, submissions get 503 job_storage_unavailable', async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'jobs-file-')), 'not-a-dir');
    fs.writeFileSync(file, 'x');
    const t = await startApp({ env: { ENABLE_LOCAL_WHISPER: 'false', STT_BACKEND: 'local', GEMMA_MODEL: '/absent.gguf', JOB_STORAGE_DIR: path.join(file, 'jobs') } });
    try {
      const { status, body } = await submitJob(t.url, wav(1));
      assert.equal(status, 503, JSON.stringify(body));
      assert.equal(body.error?.code, 'job_storage_unavailable');
    } finally {
      await t.close();
      fs.rmSync(path.dirname(file), { recursive: true, force: true });
    }
  });
});
