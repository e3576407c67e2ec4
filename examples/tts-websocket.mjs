#!/usr/bin/env node
// Streams text into /ws/tts as an LLM would (word by word) and writes the speech to a WAV file.
//
//   node examples/tts-websocket.mjs [out.wav]
//   GEMMA_API_URL=ws://localhost:6666 API_KEY=... VOICE=en-us node examples/tts-websocket.mjs
//
// Protocol: send {"type":"text"} pieces, then {"type":"flush"}; receive "ready", then per
// utterance "start", binary PCM16 frames, "end".
import fs from 'node:fs';
import WebSocket from 'ws';

const base = process.env.GEMMA_API_URL ?? 'ws://localhost:6666';
const out = process.argv[2] ?? 'speech.wav';
const text = process.env.TEXT ?? 'Hello! This sentence is spoken while the next one is still being typed. And this is the second one.';
const protocols = ['gemma-3-api', ...(process.env.API_KEY ? [`api_key.${process.env.API_KEY}`] : [])];
const ws = new WebSocket(`${base}/ws/tts?format=pcm&sample_rate=24000${process.env.VOICE ? `&voice=${encodeURIComponent(process.env.VOICE)}` : ''}`, protocols);

const pcm = [];
let sentAt = 0;
ws.on('message', (data, isBinary) => {
  if (isBinary) {
    if (pcm.length === 0) console.error(`first audio after ${(performance.now() - sentAt).toFixed(1)} ms`);
    pcm.push(data);
    return;
  }
  const event = JSON.parse(data.toString());
  if (event.type === 'ready') {
    sentAt = performance.now();
    // feed the text a word at a time, as tokens arrive from a language model
    for (const word of text.split(/(?<= )/)) ws.send(JSON.stringify({ type: 'text', text: word }));
    ws.send(JSON.stringify({ type: 'flush' }));
  } else if (event.type === 'start') {
    console.error(`utterance ${event.utterance_id}: ${event.format} at ${event.sample_rate} Hz from ${event.engine}`);
  } else if (event.type === 'end') {
    const data = Buffer.concat(pcm);
    const header = Buffer.alloc(44);
    header.write('RIFF', 0);
    header.writeUInt32LE(36 + data.length, 4);
    header.write('WAVEfmt ', 8);
    header.writeUInt32LE(16, 16);
    header.writeUInt16LE(1, 20);
    header.writeUInt16LE(1, 22);
    header.writeUInt32LE(24000, 24);
    header.writeUInt32LE(48000, 28);
    header.writeUInt16LE(2, 32);
    header.writeUInt16LE(16, 34);
    header.write('data', 36);
    header.writeUInt32LE(data.length, 40);
    fs.writeFileSync(out, Buffer.concat([header, data]));
    console.log(JSON.stringify({ file: out, duration_seconds: event.duration_seconds, engine: event.engine, text: event.text }));
    ws.close();
  } else if (event.type === 'error') {
    console.error('error:', event.error.message);
    process.exitCode = 1;
    if (event.error.code !== 'invalid_message') ws.close();
  }
});
ws.on('error', (error) => {
  console.error(error.message);
  process.exit(1);
});
