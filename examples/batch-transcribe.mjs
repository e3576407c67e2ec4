#!/usr/bin/env node
// Transcribes every audio file of a folder through POST /v1/audio/transcriptions, a few at a time
// (bounded concurrency), with progress on stderr and one JSON line per file on stdout.
//
//   node examples/batch-transcribe.mjs ./recordings [--concurrency 4]
//   GEMMA_API_URL=http://localhost:6666 API_KEY=... node examples/batch-transcribe.mjs ./recordings
import fs from 'node:fs';
import path from 'node:path';

const base = process.env.GEMMA_API_URL ?? 'http://localhost:6666';
const dir = process.argv[2];
const concurrencyFlag = process.argv.indexOf('--concurrency');
const concurrency = concurrencyFlag > 0 ? Number(process.argv[concurrencyFlag + 1]) : 4;
if (!dir) {
  console.error('usage: batch-transcribe.mjs <folder> [--concurrency N]');
  process.exit(2);
}
const files = fs
  .readdirSync(dir)
  .filter((f) => /\.(wav|mp3|flac|ogg|opus|webm|m4a|aac)$/i.test(f))
  .sort();

let done = 0;
let failed = 0;
async function transcribe(file) {
  const form = new FormData();
  form.set('file', new Blob([fs.readFileSync(path.join(dir, file))]), file);
  form.set('model', 'whisper-1');
  const started = performance.now();
  const res = await fetch(`${base}/v1/audio/transcriptions`, { method: 'POST', body: form, headers: process.env.API_KEY ? { Authorization: `Bearer ${process.env.API_KEY}` } : {} });
  const body = await res.json();
  done++;
  if (!res.ok) failed++;
  process.stderr.write(`\r${done}/${files.length} done, ${failed} failed`);
  console.log(JSON.stringify({ file, status: res.status, ms: Math.round(performance.now() - started), ...(res.ok ? { text: body.text } : { error: body.error?.message }) }));
}

// a fixed pool of workers pulling from one queue: never more than `concurrency` requests at once
const queue = [...files];
await Promise.all(Array.from({ length: Math.min(concurrency, queue.length) }, async () => {
  while (queue.length) await transcribe(queue.shift());
}));
process.stderr.write('\n');
process.exitCode = failed ? 1 : 0;
