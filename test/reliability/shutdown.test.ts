/**
 * SIGTERM on a real service process (tiny Gemma, tiny whisper, the embedded voice) while 50 HTTP
 * requests and 10 streams are in flight: every accepted request completes, every stream finishes
 * the work it had sent and is closed cleanly (SSE: its `done` event; WebSockets: the reply to what
 * was sent, then close 1001), nothing is dropped, and the process exits 0.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import WebSocket from 'ws';
import { startFakeFishSpeech } from '../fakes/fish-speech.ts';
import { wav } from '../helpers/audio.ts';
import { metricSum, scrapeMetrics, sumIn } from '../helpers/metrics.ts';
import { loopingGemmaPath, tinyWhisperPath } from '../helpers/models.ts';
import { freePort, spawnService, waitForHealth, waitForReady } from '../helpers/process.ts';
import { closeSpeech, speech } from '../helpers/speech.ts';
import { eventLog, streamPcm } from '../helpers/ws.ts';

const LONG_TEXT = 'The quick brown fox jumps over the lazy dog while the sun sets slowly behind the distant hills. '.repeat(3);

function socket(url: string) {
  const ws = new WebSocket(url);
  const log = eventLog(ws);
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  ws.on('error', () => undefined);
  return { ws, log, closed, opened: new Promise((r) => ws.once('open', r)) };
}

describe('shutdown under load', () => {
  after(() => closeSpeech());

  it('SIGTERM with 50 HTTP requests and 10 streams in flight: all complete, streams close cleanly (1001), exit 0', async () => {
    const port = await freePort();
    const service = spawnService(
      {
        GEMMA_MODEL: loopingGemmaPath(),
        LLM_DEVICE: 'cpu',
        LLM_CONTEXT_SIZE: '4096',
        LLM_PARALLEL: '4',
        LLM_QUEUE_SIZE: '64',
        LOCAL_WHISPER_MODEL: tinyWhisperPath(),
        STT_PARALLEL: '1',
        STT_QUEUE_SIZE: '64',
        STT_PARTIAL_INTERVAL_MS: '0',
        TTS_BACKEND: 'embedded',
        TTS_PARALLEL: '1',
        TTS_QUEUE_SIZE: '64',
        DIALOGUE_MAX_TOKENS: '12',
        SHUTDOWN_GRACE_SECONDS: '120',
        LOG_LEVEL: 'info',
      },
      port,
    );
    const url = service.url;
    const wsUrl = url.replace('http', 'ws');
    try {
      await waitForHealth(url);
      assert.ok(await waitForReady(url, 60_000), 'every engine ready');
      const pcm = await speech([{ silence: 0.3 }, 'Hello there, this is a rather long turn that is still going on.']);

      // 10 streams: 3 /ws/tts with an unfinished sentence, 2 /ws/stt and 2 /ws/dialogue mid-turn, 3 SSE generations
      const tts = [0, 1, 2].map(() => socket(`${wsUrl}/ws/tts?format=pcm&sample_rate=16000`));
      const stt = [0, 1].map(() => socket(`${wsUrl}/ws/stt`));
      const dialogue = [0, 1].map((i) => socket(`${wsUrl}/ws/dialogue?session_id=shutdown-${i}&output_sample_rate=16000`));
      const sockets = [...tts, ...stt, ...dialogue];
      await Promise.all(sockets.map((s) => s.opened));
      await Promise.all(sockets.map((s) => s.log.waitFor((e) => e.type === 'ready', 30_000)));
      for (const s of tts) s.ws.send(JSON.stringify({ type: 'text', text: 'This sentence is complete. This one is not finished when the server' }));
      // speech with no silence after it: a turn is in progress when SIGTERM arrives
      const speaking = [...stt, ...dialogue].map((s) => streamPcm(s.ws, pcm, 16000, 2));

      const post = (path: string, body: unknown) => fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const sse = [0, 1, 2].map(() => post('/v1/generate', { prompt: 'go', max_tokens: 120, stream: true }).then(async (r) => ({ status: r.status, text: await r.text() })));
      // 50 requests: 25 generations, 15 syntheses, 10 transcriptions
      const http: Promise<{ kind: string; status: number; body: Record<string, unknown> }>[] = [];
      const json = (kind: string) => async (r: Response) => ({ kind, status: r.status, body: (await r.json()) as Record<string, unknown> });
      for (let i = 0; i < 25; i++) http.push(post('/v1/generate', { prompt: 'go', max_tokens: 40 }).then(json('generate')));
      for (let i = 0; i < 15; i++) http.push(post('/v1/text-to-speech', { text: LONG_TEXT, format: 'wav' }).then(json('tts')));
      for (let i = 0; i < 10; i++) {
        const form = new FormData();
        form.append('file', new Blob([wav(3)], { type: 'audio/wav' }), 'clip.wav');
        form.append('model', 'whisper-1');
        form.append('response_format', 'verbose_json');
        http.push(fetch(`${url}/v1/audio/transcriptions`, { method: 'POST', body: form }).then(json('stt')));
      }

      // every request has reached the server (answered or still in flight), and the turns are under way
      // Both series from one scrape (read from two, a request that ends in between is counted twice).
      // Even in one scrape a request that has just finished can be counted twice for a moment: the
      // histogram is observed on 'finish', the gauge falls on 'close' a tick later. So wait for
      // the count to read exactly 53, not for it to pass 53.
      const received = async () => {
        const scrape = await scrapeMetrics(url);
        return sumIn(scrape, 'http_requests_in_flight') - 1 + sumIn(scrape, 'http_request_duration_seconds_count', { method: 'POST' });
      };
      const deadline = Date.now() + 30_000;
      let count = await received();
      while (count !== 53 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
        count = await received();
      }
      assert.equal(count, 53, 'all 53 HTTP requests received before SIGTERM');
      await Promise.all([...stt, ...dialogue].map((s) => s.log.waitFor((e) => e.type === 'speech_started', 30_000)));
      const inFlight = await metricSum(url, 'http_requests_in_flight');
      service.child.kill('SIGTERM');
      const sigtermAt = performance.now();

      // a socket that sends more after the shutdown began is told so; what it sent before still completes.
      // The drain begins moments after the service logs its shutdown (a busy machine can delay either):
      // sent again until the socket says so — text that came before the drain is simply spoken too
      const refusedLate = () => tts[0]!.log.events.some((e) => e.type === 'error' && (e.error as { code: string }).code === 'shutting_down');
      for (let waited = 0; !service.output().includes('shutting down: draining') && waited < 30_000; waited += 20) await new Promise((r) => setTimeout(r, 20));
      for (let tries = 0; !refusedLate() && tries < 100; tries++) {
        tts[0]!.ws.send(JSON.stringify({ type: 'text', text: 'Sent too late.' }));
        await new Promise((r) => setTimeout(r, 200));
      }

      const results = await Promise.all(http);
      const byKind = (k: string) => results.filter((r) => r.kind === k);
      assert.deepEqual(results.map((r) => r.status), Array(50).fill(200), 'every accepted request completes');
      for (const r of byKind('generate')) assert.equal((r.body.usage as { completion_tokens: number }).completion_tokens, 40);
      for (const r of byKind('tts')) assert.ok((r.body.duration_seconds as number) > 5 && typeof r.body.audio_base64 === 'string');
      // the whole body on a mismatch: an empty text seen once in CI (issue 17) needs its segments to be explained
      for (const r of byKind('stt')) {
        assert.equal(r.body.duration, 3, JSON.stringify(r.body));
        assert.match(r.body.text as string, /^(Hello from the tiny whisper model\.\s*)+$/, JSON.stringify(r.body));
      }
      for (const s of await Promise.all(sse)) {
        assert.equal(s.status, 200);
        assert.match(s.text, /event: done\n/, 'each SSE stream ends with its done event');
      }
      await Promise.all(speaking);

      for (const s of tts) {
        assert.equal(await s.closed, 1001, '/ws/tts closes with 1001');
        const ends = s.log.events.filter((e) => e.type === 'end');
        assert.match(ends.map((e) => e.text).join(' '), /This sentence is complete\. This one is not finished when the server/, 'the unfinished text was still spoken');
        assert.ok(s.log.audio.length > 0);
      }
      assert.ok(refusedLate(), 'late text is refused with shutting_down');
      for (const s of stt) {
        assert.equal(await s.closed, 1001, '/ws/stt closes with 1001');
        const final = s.log.events.find((e) => e.type === 'transcript.final');
        assert.ok(final, `the turn in progress was transcribed (events: ${s.log.events.map((e) => e.type).join(', ')})`);
        assert.match(final.text as string, /^(Hello from the tiny whisper model\.\s*)+$/);
      }
      for (const s of dialogue) {
        assert.equal(await s.closed, 1001, '/ws/dialogue closes with 1001');
        const done = s.log.events.find((e) => e.type === 'reply.done');
        assert.ok(done, `the turn in progress was answered (events: ${s.log.events.map((e) => e.type).join(', ')})`);
      }
      const code = await service.exited;
      const took = (performance.now() - sigtermAt) / 1000;
      process.stderr.write(`# shutdown: ${inFlight - 1} HTTP requests in flight at SIGTERM (53 received), 10 streams; all done and exit ${code} after ${took.toFixed(1)} s\n`);
      assert.equal(code, 0);
      assert.doesNotMatch(service.output(), /"level":"(error|fatal)"/, 'no error logged');
    } finally {
      service.child.kill('SIGKILL');
    }
  });

  // Fastify's plugin timeout (10 s by default) also bounded app.close()'s preClose hooks, where the
  // WebSockets finish their accepted work: a drain longer than that ended in AVV_ERR_READY_TIMEOUT
  // and exit 1. Here fish-speech (the fake) takes 12 s to answer a /ws/tts utterance sent before
  // SIGTERM, so draining takes longer than 10 s on any machine, fast or slow.
  it('a drain longer than 10 s (a /ws/tts utterance waiting on fish-speech) is bounded by SHUTDOWN_GRACE_SECONDS only: spoken, closed 1001, exit 0', async () => {
    const fish = await startFakeFishSpeech();
    const port = await freePort();
    const service = spawnService({ TTS_BACKEND: 'openaudio', OPENAUDIO_API_BASE: fish.url, OPENAUDIO_TIMEOUT_SECONDS: '120', SHUTDOWN_GRACE_SECONDS: '90', LOG_LEVEL: 'info' }, port);
    try {
      await waitForHealth(service.url);
      const ready = Date.now() + 60_000;
      while (!(await (await fetch(`${service.url}/health/ready`)).text()).includes('"tts":{"status":"ready"') && Date.now() < ready) await new Promise((r) => setTimeout(r, 100));
      fish.delayMs = 12_000;
      const tts = socket(`${service.url.replace('http', 'ws')}/ws/tts?format=pcm&sample_rate=16000`);
      await tts.opened;
      await tts.log.waitFor((e) => e.type === 'ready', 30_000);
      tts.ws.send(JSON.stringify({ type: 'text', text: 'Held by a slow upstream.' }));
      tts.ws.send(JSON.stringify({ type: 'flush' }));
      const sent = Date.now() + 30_000;
      while (fish.requests.length === 0 && Date.now() < sent) await new Promise((r) => setTimeout(r, 20));
      assert.equal(fish.requests.length, 1, 'the utterance reached fish-speech before SIGTERM');
      service.child.kill('SIGTERM');
      const sigtermAt = performance.now();
      assert.equal(await tts.closed, 1001, '/ws/tts closes with 1001 after its utterance');
      const end = tts.log.events.find((e) => e.type === 'end');
      assert.ok(end, `the utterance was spoken (events: ${tts.log.events.map((e) => e.type).join(', ')})`);
      assert.equal(end.text, 'Held by a slow upstream.');
      assert.ok(tts.log.audio.length > 0);
      const code = await service.exited;
      const took = (performance.now() - sigtermAt) / 1000;
      process.stderr.write(`# shutdown with a 12 s WebSocket drain: exit ${code} after ${took.toFixed(1)} s (grace 90 s)\n`);
      assert.equal(code, 0, service.output().split('\n').slice(-6).join('\n'));
      assert.ok(took >= 11.5 && took < 90, `the drain waited for the utterance (>10 s), within SHUTDOWN_GRACE_SECONDS (took ${took.toFixed(1)} s)`);
      // (the missing LLM and Whisper models are logged as errors at start-up; nothing after SIGTERM is)
      const afterSigterm = service.output().slice(service.output().indexOf('shutting down'));
      assert.doesNotMatch(afterSigterm, /"level":"(error|fatal)"/, 'no error logged while shutting down');
    } finally {
      service.child.kill('SIGKILL');
      await fish.close();
    }
  });
});
