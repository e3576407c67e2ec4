/**
 * An MP4/M4A whose `moov` box (the sample tables) comes after its `mdat` (the audio) — what most
 * encoders write unless told to "fast-start" — cannot be decoded as a stream: audio-decode's AAC
 * decoder accumulates every byte until the tables arrive (re-copying the accumulation on each
 * piece), then decodes every frame in one call, so the whole file's samples were in memory at
 * once before MAX_AUDIO_SECONDS could be checked. Moving `moov` in front of the first `mdat`, as
 * qt-faststart does (chunk offsets in stco/co64 shifted by moov's size), gives the decoder its
 * tables first: it then decodes piece by piece like every other format, and the decode worker's
 * per-piece length check holds. One copy of the (upload-sized) file; nothing is decoded here.
 */

interface Box {
  type: string;
  start: number;
  end: number;
  header: number;
}

/** Boxes between `start` and `end`, at most `max` of them; undefined when one is malformed. */
function boxes(b: Uint8Array, start: number, end: number, max = 4096): Box[] | undefined {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: Box[] = [];
  for (let at = start; at + 8 <= end && out.length < max; ) {
    let size = v.getUint32(at);
    let header = 8;
    if (size === 1) {
      if (at + 16 > end) return undefined;
      size = v.getUint32(at + 8) * 2 ** 32 + v.getUint32(at + 12);
      header = 16;
    } else if (size === 0) size = end - at;
    if (size < header || at + size > end) return undefined;
    out.push({ type: String.fromCharCode(b[at + 4]!, b[at + 5]!, b[at + 6]!, b[at + 7]!), start: at, end: at + size, header });
    at += size;
  }
  return out;
}

const CONTAINERS = new Set(['moov', 'trak', 'mdia', 'minf', 'stbl']);

/** Adds `shift` to every chunk offset (stco, co64) inside `moov` (a copy); false if one would overflow. */
function shiftChunkOffsets(moov: Uint8Array, shift: number, from: number): boolean {
  const v = new DataView(moov.buffer, moov.byteOffset, moov.byteLength);
  const walk = (start: number, end: number, depth: number): boolean => {
    for (const box of boxes(moov, start, end) ?? []) {
      const body = box.start + box.header;
      if (CONTAINERS.has(box.type) && depth < 6) {
        if (!walk(body, box.end, depth + 1)) return false;
      } else if (box.type === 'stco' || box.type === 'co64') {
        const wide = box.type === 'co64';
        const count = body + 8 <= box.end ? v.getUint32(body + 4) : 0;
        for (let i = 0, at = body + 8; i < count && at + (wide ? 8 : 4) <= box.end; i++, at += wide ? 8 : 4) {
          const offset = wide ? v.getUint32(at) * 2 ** 32 + v.getUint32(at + 4) : v.getUint32(at);
          if (offset < from) continue;
          const moved = offset + shift;
          if (wide) {
            v.setUint32(at, Math.floor(moved / 2 ** 32));
            v.setUint32(at + 4, moved >>> 0);
          } else if (moved > 0xffffffff) return false;
          else v.setUint32(at, moved);
        }
      }
    }
    return true;
  };
  return walk(0, moov.length, 0);
}

/** The file with `moov` before the first `mdat`; the bytes unchanged when it already is (or cannot be moved). */
export function moovFirst(b: Uint8Array): Uint8Array {
  const top = boxes(b, 0, b.length);
  if (!top) return b;
  const mdat = top.findIndex((box) => box.type === 'mdat');
  const moovAt = top.findIndex((box) => box.type === 'moov');
  if (mdat < 0 || moovAt < 0 || moovAt < mdat) return b;
  const moovBox = top[moovAt]!;
  const moov = b.slice(moovBox.start, moovBox.end);
  // everything from the first mdat on moves back by moov's size
  if (!shiftChunkOffsets(moov, moov.length, top[mdat]!.start)) return b;
  const out = new Uint8Array(b.length);
  let at = 0;
  for (const [i, box] of top.entries()) {
    if (i === mdat) {
      out.set(moov, at);
      at += moov.length;
    }
    if (i === moovAt) continue;
    out.set(b.subarray(box.start, box.end), at);
    at += box.end - box.start;
  }
  // bytes after the last whole box (a truncated tail) stay at the end
  out.set(b.subarray(top.at(-1)!.end), at);
  return out;
}
