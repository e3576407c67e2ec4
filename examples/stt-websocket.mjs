#!/usr/bin/env node
// Streams a 16 kHz mono 16-bit WAV file into /ws/stt in real time (as a microphone would) and
// prints the transcripts: partial ones as they change, a final one per turn.
//
//   node examples/stt-websocket.mjs speech.wav [--fast]
//   (convert other audio first: ffmpeg -i in.mp3 -ar 16000 -ac 1 -c:a pcm_s16le speech.wav)
import fs from 'node:fs';
import WebSocket from 'ws';

const base = process.env.GEMMA_API_URL ?? 'ws://localhost:6666';
const file = process.argv[2];
const fast = process.argv.includes('--fast');
if (!file) {
  console.error('usage: stt-websocket.mjs <16 kHz mono wav> [--fast]');
  process.exit(2);
}
const wav = fs.readFileSync(file);
const dataAt = wav.indexOf('data') + 8; // the PCM after the header
const pcm = wav.subarray(dataAt);
const rate = wav.readUInt32LE(24);

const protocols = ['gemma-3-api', ...(process.env.API_KEY ? [`api_key.${process.env.API_KEY}`] : [])];
const ws = new WebSocket(`${base}/ws/stt?sample_rate=${rate}`, protocols);
const finals = [];
ws.on('message', (data, isBinary) => {
  if (isBinary) return;
  const event = JSON.parse(data.toString());
  if (event.type === 'transcript.partial') process.stderr.write(`\r… ${event.text}`);
  if (event.type === 'transcript.final') {
    finals.push(event);
    console.log(JSON.stringify({ turn: event.turn_id, start_ms: event.start_ms, end_ms: event.end_ms, text: event.text }));
  }
  if (event.type === 'error') console.error('error:', event.error.message);
});
await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
const frame = Math.round(rate / 50) * 2; // 20 ms
for (let i = 0; i < pcm.length; i += frame) {
  ws.send(pcm.subarray(i, i + frame));
  if (!fast) await new Promise((r) => setTimeout(r, 20));
}
ws.send(JSON.stringify({ type: 'commit' })); // end the last turn even without trailing silence
// wait until the transcripts stop coming
let count = -1;
while (count !== finals.length) {
  count = finals.length;
  await new Promise((r) => setTimeout(r, 1500));
}
ws.close();
