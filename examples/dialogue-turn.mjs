#!/usr/bin/env node
// One dialogue turn over HTTP: text (or an audio file) in, the reply text and speech out, with the
// per-stage latencies. Pass --session to continue a conversation.
//
//   node examples/dialogue-turn.mjs "What is the capital of France?" [--session demo] [--out reply.wav]
//   node examples/dialogue-turn.mjs --audio question.wav [--session demo]
import fs from 'node:fs';

const base = process.env.GEMMA_API_URL ?? 'http://localhost:6666';
const arg = (name) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined);
const audio = arg('--audio');
const text = audio ? undefined : process.argv[2];
const out = arg('--out') ?? 'reply.wav';
if (!audio && !text) {
  console.error('usage: dialogue-turn.mjs "<text>" | --audio <file> [--session ID] [--out reply.wav]');
  process.exit(2);
}
const body = { session_id: arg('--session'), format: 'wav', ...(audio ? { audio_base64: fs.readFileSync(audio).toString('base64') } : { text }) };
const res = await fetch(`${base}/v1/dialogue`, {
  method: 'POST',
  headers: { 'content-type': 'application/json', ...(process.env.API_KEY ? { Authorization: `Bearer ${process.env.API_KEY}` } : {}) },
  body: JSON.stringify(body),
});
const turn = await res.json();
if (!res.ok) {
  console.error(`HTTP ${res.status}: ${turn.error?.message} (request ${turn.request_id})`);
  process.exit(1);
}
if (turn.audio_base64) fs.writeFileSync(out, Buffer.from(turn.audio_base64, 'base64'));
console.log(JSON.stringify({ session_id: turn.session_id, heard: turn.transcript?.text ?? null, reply: turn.reply_text, audio: turn.audio_base64 ? out : null, degraded: turn.degraded, timings: turn.timings }));
