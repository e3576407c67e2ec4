#!/usr/bin/env node
// postinstall: rebuild smart-whisper's bundled whisper.cpp with the CPU features this machine has
// and with the source patches of scripts/whisper-patches.mjs (single-timestamp seek, no_speech_prob,
// whisper_state reuse across windows and requests).
// Its own install step compiles with generic flags, which ran ~12x slower here than
// -march=x86-64-v3 (AVX2/FMA/F16C); where the CPU has AVX-512 (F/BW/CD/DQ/VL) it builds for
// x86-64-v4, whose tinyBLAS kernels (patch 4) take ~13 % less CPU per window than v3. The build is
// for this machine's CPU: an image built on an AVX-512 host and run on one without dies of SIGILL,
// so images pin the level with WHISPER_MARCH=x86-64-v3 (the Dockerfile does). Skipped when the
// build already used these flags and patches, or with SKIP_WHISPER_REBUILD=1. Never fails the install.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { applyWhisperPatches, PATCH_ID } from './whisper-patches.mjs';

const dir = path.resolve('node_modules/smart-whisper');
const marker = path.join(dir, 'build', 'gemma-3-api-cflags.txt');
const cpuinfo = fs.existsSync('/proc/cpuinfo') ? fs.readFileSync('/proc/cpuinfo', 'utf8') : '';
const has = (...features) => process.arch === 'x64' && features.every((f) => new RegExp(`\\b${f}\\b`).test(cpuinfo));
const march = process.env.WHISPER_MARCH ||
  (has('avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512cd', 'avx512dq', 'avx512vl') ? 'x86-64-v4' : has('avx2', 'fma', 'f16c') ? 'x86-64-v3' : '');
const flags = march ? `-march=${march} -O3` : '-O3';
const stamp = `${flags} ${PATCH_ID}`;

if (process.env.SKIP_WHISPER_REBUILD === '1' || !fs.existsSync(dir)) process.exit(0);
if (fs.existsSync(marker) && fs.readFileSync(marker, 'utf8') === stamp) process.exit(0);
try {
  applyWhisperPatches(dir);
} catch (error) {
  console.warn(`gemma-3-api: whisper.cpp source patches did not apply (${error.message}); keeping the current build.`);
  process.exit(0);
}
console.log(`gemma-3-api: rebuilding whisper.cpp with ${flags} and ${PATCH_ID} (a minute or more)...`);
const result = spawnSync('npm', ['rebuild', 'smart-whisper', '--foreground-scripts=false'], {
  stdio: ['ignore', 'ignore', 'inherit'],
  env: { ...process.env, CFLAGS: flags, CXXFLAGS: flags },
});
if (result.status === 0) fs.writeFileSync(marker, stamp);
else console.warn('gemma-3-api: optimized whisper.cpp build failed; keeping the generic build (slower).');
