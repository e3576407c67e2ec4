/**
 * VAD before Whisper on whole files (what faster-whisper's `vad_filter` and whisper.cpp's own VAD
 * do): find the speech regions with the WebRTC VAD (src/audio/vad.ts), pack them into one shorter
 * buffer for the engine, and map the engine's timestamps back to the original audio.
 *
 * Level: the WebRTC VAD models noise and speech adaptively, but it calls very quiet input silence,
 * so the samples are scaled to a fixed peak first (gain capped at 40 dB; digital silence stays
 * silence). Packing never cuts a word: each region keeps PAD of audio on both sides, close regions
 * merge, and a region never straddles a 30 s window edge of the packed buffer (the engine decodes
 * fixed 30 s windows): one that does not fit the rest of a window starts the next one, the rest of
 * the window staying zeros (whisper pads every window to 30 s anyway, so it costs nothing).
 * Regions longer than a window are split at their quietest 20 ms frame near the edge.
 *
 * An hour of audio is 57.6 M samples: every pass over it (the peak, the VAD frames, the packing
 * copy) gives the event loop back every few milliseconds (Pacer), so one long file with
 * `vad_filter` never stalls /health or the other requests, and a client that leaves stops it.
 */
import { VAD_SAMPLE_RATE, WebRtcVad } from './vad.ts';

const FRAME = 320; // 20 ms
const FRAME_MS = 20;

export interface RegionSettings {
  /** WebRTC VAD mode: 0 keeps the most audio as speech. */
  mode: number;
  /** Audio kept before and after each voiced run (ms). */
  padMs: number;
  /** Padded regions closer than this merge into one (ms). */
  mergeGapMs: number;
  /** Voiced runs shorter than this are dropped as clicks (ms). */
  minSpeechMs: number;
}

export const DEFAULT_REGION_SETTINGS: RegionSettings = { mode: 1, padMs: 300, mergeGapMs: 600, minSpeechMs: 100 };

/** A span of the original audio, in samples: [start, end). */
export interface Region {
  start: number;
  end: number;
}

const TARGET_PEAK = 0.5;
const MAX_GAIN = 100;

/** Work between two yields to the event loop (ms): short enough that /health never waits on it. */
const SLICE_MS = 8;
/** Samples / frames handled between two looks at the clock (cheap enough, fine enough). */
const PEAK_STEP = 64 * 1024;
const FRAME_STEP = 100;

/** Gives the event loop back once SLICE_MS of work has passed; throws once `signal` is aborted. */
class Pacer {
  private since = performance.now();
  constructor(private readonly signal: AbortSignal) {}

  async tick(): Promise<void> {
    if (performance.now() - this.since < SLICE_MS) return;
    await new Promise((resolve) => setImmediate(resolve));
    this.signal.throwIfAborted();
    this.since = performance.now();
  }
}

async function peakOf(audio: Float32Array, pacer: Pacer): Promise<number> {
  let peak = 0;
  for (let from = 0; from < audio.length; from += PEAK_STEP) {
    const to = Math.min(audio.length, from + PEAK_STEP);
    for (let i = from; i < to; i++) {
      const v = Math.abs(audio[i]!);
      if (v > peak) peak = v;
    }
    await pacer.tick();
  }
  return peak;
}

/** Speech regions of 16 kHz mono audio; gives the event loop back every few ms (see the file comment). */
export async function speechRegions(audio: Float32Array, signal: AbortSignal, settings: RegionSettings = DEFAULT_REGION_SETTINGS): Promise<Region[]> {
  const pacer = new Pacer(signal);
  signal.throwIfAborted();
  const peak = await peakOf(audio, pacer);
  if (peak === 0) return [];
  const gain = Math.min(TARGET_PEAK / peak, MAX_GAIN);
  const vad = await WebRtcVad.create(settings.mode);
  const runs: Region[] = [];
  try {
    const frame = new Int16Array(FRAME);
    let runStart = -1;
    const frames = Math.floor(audio.length / FRAME);
    for (let f = 0; f < frames; f++) {
      if (f % FRAME_STEP === FRAME_STEP - 1) await pacer.tick();
      const base = f * FRAME;
      for (let i = 0; i < FRAME; i++) frame[i] = Math.max(-32768, Math.min(32767, Math.round(audio[base + i]! * gain * 32767)));
      const voiced = vad.isSpeech(frame);
      if (voiced && runStart < 0) runStart = f;
      if (!voiced && runStart >= 0) {
        runs.push({ start: runStart, end: f });
        runStart = -1;
      }
    }
    if (runStart >= 0) runs.push({ start: runStart, end: frames });
  } finally {
    vad.close();
  }
  const minFrames = Math.ceil(settings.minSpeechMs / FRAME_MS);
  const pad = Math.round((settings.padMs / 1000) * VAD_SAMPLE_RATE);
  const gap = Math.round((settings.mergeGapMs / 1000) * VAD_SAMPLE_RATE);
  const regions: Region[] = [];
  for (const run of runs) {
    if (run.end - run.start < minFrames) continue;
    const start = Math.max(0, run.start * FRAME - pad);
    const end = Math.min(audio.length, run.end * FRAME + pad);
    const last = regions.at(-1);
    if (last && start - last.end < gap) last.end = Math.max(last.end, end);
    else regions.push({ start, end });
  }
  return regions;
}

/** One packed piece: `length` samples of the original from `origin`, placed at `at` in the packed buffer. */
export interface Chunk {
  origin: number;
  at: number;
  length: number;
}

export interface PackedSpeech {
  audio: Float32Array;
  chunks: Chunk[];
}

/** Index of the quietest 20 ms frame of audio[from, to) (a place to split a long region). */
function quietestCut(audio: Float32Array, from: number, to: number): number {
  let best = to;
  let bestEnergy = Infinity;
  for (let f = from; f + FRAME <= to; f += FRAME) {
    let energy = 0;
    for (let i = f; i < f + FRAME; i++) energy += audio[i]! * audio[i]!;
    if (energy < bestEnergy) {
      bestEnergy = energy;
      best = f + FRAME / 2;
    }
  }
  return best;
}

/** Packs regions into windows of `window` samples (see the file comment); yields as speechRegions does. */
export async function packRegions(audio: Float32Array, regions: Region[], window: number, signal: AbortSignal): Promise<PackedSpeech> {
  const pacer = new Pacer(signal);
  const pieces: Region[] = [];
  for (const region of regions) {
    let { start } = region;
    while (region.end - start > window) {
      // split in the last 5 s before the window edge, where it is quietest (5 s: 250 frames, well under a slice)
      const cut = quietestCut(audio, start + Math.max(FRAME, window - 5 * VAD_SAMPLE_RATE), start + window);
      pieces.push({ start, end: cut });
      start = cut;
      await pacer.tick();
    }
    pieces.push({ start, end: region.end });
  }
  const chunks: Chunk[] = [];
  let cursor = 0;
  for (const piece of pieces) {
    const length = piece.end - piece.start;
    const used = cursor % window;
    if (used > 0 && used + length > window) cursor += window - used;
    chunks.push({ origin: piece.start, at: cursor, length });
    cursor += length;
  }
  const packed = new Float32Array(cursor);
  for (const c of chunks) {
    packed.set(audio.subarray(c.origin, c.origin + c.length), c.at);
    await pacer.tick();
  }
  return { audio: packed, chunks };
}

/**
 * A packed-buffer time (seconds) → the original audio's time. A time in the zeros after a chunk
 * maps to that chunk's end (an end) or the next chunk's start (a start); an end exactly on the
 * joint of two chunks belongs to the first.
 */
export function toOriginalTime(chunks: Chunk[], seconds: number, isEnd: boolean): number {
  const t = Math.max(0, seconds * VAD_SAMPLE_RATE);
  let lo = 0;
  let hi = chunks.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (chunks[mid]!.at <= t) lo = mid;
    else hi = mid - 1;
  }
  const i = lo;
  const c = chunks[i];
  if (!c) return seconds;
  const within = t - c.at;
  let original: number;
  if (isEnd && within === 0 && i > 0) original = chunks[i - 1]!.origin + chunks[i - 1]!.length;
  else if (within <= c.length) original = c.origin + Math.max(0, within);
  else if (isEnd || i + 1 >= chunks.length) original = c.origin + c.length;
  else original = chunks[i + 1]!.origin;
  return original / VAD_SAMPLE_RATE;
}
