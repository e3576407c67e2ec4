/** CPU time (all threads) of one smart-whisper window, outside the service: npx tsx bench/stt-binding-cpu.ts MODEL WAV [ROUNDS] (TT=0: no token timestamps; BEAM=1 greedy, default 5 as the service). */
import fs from 'node:fs';
import { loadSmartWhisper } from '../src/engines/stt/whisper-backends.ts';
const model = process.argv[2]!, wav = process.argv[3]!, rounds = Number(process.argv[4] ?? 5);
const b = fs.readFileSync(wav);
const n = (b.length - 44) / 2;
const s = new Float32Array(n);
for (let i = 0; i < n; i++) s[i] = b.readInt16LE(44 + i * 2) / 32768;
const be = await loadSmartWhisper(model);
const p = { language: 'en', translate: false, prompt: '', temperature: 0, threads: 1, beamSize: Number(process.env.BEAM ?? 5), tokenTimestamps: process.env.TT !== '0' };
const out: number[] = [];
const cpu: number[] = [];
for (let r = 0; r < rounds; r++) {
  const t = performance.now();
  const c = process.cpuUsage();
  const seg = await be.run(s, p, new AbortController().signal);
  out.push(Math.round(performance.now() - t));
  const d = process.cpuUsage(c);
  cpu.push(Math.round((d.user + d.system) / 1000));
  if (r === 0) console.error('segments', seg.length);
}
console.log(JSON.stringify({ tokenTimestamps: p.tokenTimestamps, beamSize: p.beamSize, ms: out, cpu_ms: cpu }));
await be.free();
