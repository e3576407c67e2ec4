/**
 * What the runner process boundary costs, as JSON:
 *  - ipc: the time to hand audio to a child process and hear back, by serialization: a Float32Array
 *    with `advanced` (structured clone) in one message and in 30 s parts (what the Whisper runner
 *    sends), against the JSON a plain `fork` would need (an array of numbers); sizes of one 30 s
 *    window, 10 and 60 minutes. ONLY=ipc runs this part alone.
 *  - stt: /v1/speech-to-text (upload, decoding, transcription) with STT_RUNNER=process against
 *    STT_RUNNER=inline, both services up at once on the same tiny-dimension whisper model, same
 *    audio and threads, requests alternating (never concurrent, order flipped every round).
 *  - rss: the runner processes' resident memory idle (model loaded, nothing to do) and at their
 *    peak while working (VmHWM), for the LLM and the Whisper runner; the gateway's RSS beside it,
 *    and the inline service's for comparison.
 *
 *   npx tsx bench/runner-overhead.ts     (ROUNDS=5 WHISPER_THREADS=1 SHAPES=turn,five_minutes)
 */
import { execFileSync, fork } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { wav } from '../test/helpers/audio.ts';
import { median, startTinyService, type TinyService } from './support.ts';

const ROUNDS = Number(process.env.ROUNDS ?? 5);
const THREADS = process.env.WHISPER_THREADS ?? '1';
const SHAPES: Record<string, number> = { turn: 30, five_minutes: 300 };
const shapes = (process.env.SHAPES ?? 'turn,five_minutes').split(',').filter((s) => s in SHAPES);
const RATE = 16000;

async function ipc(): Promise<Record<string, unknown>> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'runner-ipc-'));
  const echo = path.join(dir, 'echo.mjs');
  // the child answers with what the runner would need: the number of samples it got
  fs.writeFileSync(echo, "let n = 0; process.on('message', (m) => { if (m.part) { n += m.part.length; if (m.last) { process.send(n); n = 0; } } else process.send(m.audio.length); });");
  const results: Record<string, unknown> = {};
  for (const serialization of ['advanced', 'json'] as const) {
    const child = fork(echo, [], { serialization });
    const roundTrip = (audio: Float32Array | number[], inParts = false) =>
      new Promise<number>((resolve) => {
        const started = process.hrtime.bigint();
        child.once('message', () => resolve(Number(process.hrtime.bigint() - started) / 1e6));
        if (!inParts || Array.isArray(audio)) return child.send({ audio });
        // as the Whisper runner sends it: 30 s per message
        const part = 30 * RATE;
        for (let o = 0; o < audio.length; o += part) child.send({ part: audio.subarray(o, o + part), last: o + part >= audio.length });
      });
    for (const seconds of [30, 600, 3600]) {
      if (serialization === 'json' && seconds > 600) continue; // minutes of JSON text: not a contender
      const samples = new Float32Array(seconds * RATE).map((_, i) => Math.sin(i / 7) * 0.3);
      const payload = serialization === 'json' ? Array.from(samples) : samples;
      await roundTrip(payload); // warm-up
      const times: number[] = [];
      for (let r = 0; r < ROUNDS; r++) times.push(await roundTrip(payload));
      results[`${serialization}_${seconds}s_ms`] = { median: +median(times).toFixed(2), min: +Math.min(...times).toFixed(2), max: +Math.max(...times).toFixed(2) };
      if (serialization === 'advanced' && seconds > 30) {
        const parts: number[] = [];
        for (let r = 0; r < ROUNDS; r++) parts.push(await roundTrip(payload, true));
        results[`advanced_30s_parts_${seconds}s_ms`] = { median: +median(parts).toFixed(2), min: +Math.min(...parts).toFixed(2), max: +Math.max(...parts).toFixed(2) };
      }
    }
    child.kill();
  }
  fs.rmSync(dir, { recursive: true, force: true });
  return results;
}

/** The pid of the gateway's child whose command line names `entry`. */
function childPid(parent: number, entry: string): number | undefined {
  const out = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(parent)], { encoding: 'utf8' });
  const line = out.split('\n').find((l) => l.includes(entry));
  return line ? Number(line.trim().split(/\s+/)[0]) : undefined;
}

const statusMb = (pid: number, field: 'VmRSS' | 'VmHWM') => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

async function transcribe(url: string, audio: Buffer): Promise<number> {
  const form = new FormData();
  form.append('file', new Blob([new Uint8Array(audio)], { type: 'audio/wav' }), 'clip.wav');
  const started = performance.now();
  const res = await fetch(`${url}/v1/speech-to-text`, { method: 'POST', body: form });
  if (res.status !== 200) throw new Error(`transcription: ${res.status} ${await res.text()}`);
  await res.arrayBuffer();
  return (performance.now() - started) / 1000;
}

async function generate(url: string): Promise<void> {
  const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'go' }], max_tokens: 200 }) });
  if (res.status !== 200) throw new Error(`generation: ${res.status}`);
  await res.arrayBuffer();
}

async function main(): Promise<void> {
  const report: Record<string, unknown> = { date: new Date().toISOString(), cpus: os.cpus().length, loadavg: os.loadavg().map((l) => +l.toFixed(2)), rounds: ROUNDS, whisper_threads: Number(THREADS) };
  report.ipc = await ipc();
  if (process.env.ONLY === 'ipc') return console.log(JSON.stringify(report, null, 2));

  const env = { WHISPER_THREADS: THREADS, LLM_THREADS: '1', LLM_DEVICE: 'cpu', STT_BACKEND: 'local', STT_PARALLEL: '1' };
  const services: Record<'process' | 'inline', TinyService> = {
    process: await startTinyService({ ...env, STT_RUNNER: 'process', LLM_RUNNER: 'process' }),
    inline: await startTinyService({ ...env, STT_RUNNER: 'inline', LLM_RUNNER: 'inline' }),
  };
  try {
    const gateway = services.process.service.child.pid!;
    const sttRunner = childPid(gateway, 'stt-runner');
    const llmRunner = childPid(gateway, 'llm-runner');
    if (!sttRunner || !llmRunner) throw new Error('runner processes not found');
    const idle = { stt_runner_mb: statusMb(sttRunner, 'VmRSS'), llm_runner_mb: statusMb(llmRunner, 'VmRSS'), gateway_mb: services.process.rssMb(), inline_service_mb: services.inline.rssMb() };

    const stt: Record<string, unknown> = {};
    for (const shape of shapes) {
      const audio = wav(SHAPES[shape]!);
      const times: Record<'process' | 'inline', number[]> = { process: [], inline: [] };
      await transcribe(services.process.url, audio); // warm-up both
      await transcribe(services.inline.url, audio);
      for (let r = 0; r < ROUNDS; r++) {
        const order = r % 2 === 0 ? (['process', 'inline'] as const) : (['inline', 'process'] as const);
        for (const mode of order) times[mode].push(await transcribe(services[mode].url, audio));
      }
      const ratios = times.process.map((t, i) => t / times.inline[i]!);
      stt[shape] = {
        audio_seconds: SHAPES[shape],
        process_s: { median: +median(times.process).toFixed(3), min: +Math.min(...times.process).toFixed(3), max: +Math.max(...times.process).toFixed(3) },
        inline_s: { median: +median(times.inline).toFixed(3), min: +Math.min(...times.inline).toFixed(3), max: +Math.max(...times.inline).toFixed(3) },
        ratio_of_medians: +(median(times.process) / median(times.inline)).toFixed(3),
        per_round_ratio: { min: +Math.min(...ratios).toFixed(3), max: +Math.max(...ratios).toFixed(3) },
      };
    }
    for (let i = 0; i < 3; i++) await generate(services.process.url);
    report.stt = stt;
    report.rss_mb = {
      idle: Object.fromEntries(Object.entries(idle).map(([k, v]) => [k, +v.toFixed(1)])),
      after_work: { stt_runner_mb: +statusMb(sttRunner, 'VmRSS').toFixed(1), llm_runner_mb: +statusMb(llmRunner, 'VmRSS').toFixed(1), gateway_mb: +services.process.rssMb().toFixed(1), inline_service_mb: +services.inline.rssMb().toFixed(1) },
      peak: { stt_runner_mb: +statusMb(sttRunner, 'VmHWM').toFixed(1), llm_runner_mb: +statusMb(llmRunner, 'VmHWM').toFixed(1), gateway_mb: +services.process.rssMb('VmHWM').toFixed(1), inline_service_mb: +services.inline.rssMb('VmHWM').toFixed(1) },
    };
    report.loadavg_after = os.loadavg().map((l) => +l.toFixed(2));
  } finally {
    for (const s of Object.values(services)) {
      s.service.child.kill('SIGTERM');
      await s.service.exited;
    }
  }
  console.log(JSON.stringify(report, null, 2));
}

await main();
