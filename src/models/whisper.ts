/**
 * Whisper model files: tier names (`base.en`, `large-v3-turbo`, `small-q5_1`, ...) resolve to
 * whisper.cpp's ggml files in the `ggerganov/whisper.cpp` Hugging Face repo (`ggml-<tier>.bin`,
 * downloaded into the HF cache like the LLM); anything with a slash or a `.bin` suffix is a path.
 * Files are checked before whisper.cpp sees them: it crashes the process on a bad file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ModelUnavailableError } from './errors.ts';
import { resolveHfFile, type HfOptions } from './hugging-face.ts';

const TIER = /^(tiny|base|small|medium|large-v1|large-v2|large-v3|large-v3-turbo)(\.en)?(-q\d_\d|-q8_0)?$/;
export const WHISPER_REPO = 'ggerganov/whisper.cpp';

export function isWhisperTier(spec: string): boolean {
  return TIER.test(spec);
}

export interface WhisperModelFile {
  file: string;
  /** From the header: n_vocab ≥ 51865 means multilingual (language detection, translation). */
  multilingual: boolean;
}

export async function resolveWhisperModel(spec: string, options: HfOptions): Promise<WhisperModelFile> {
  let file: string;
  if (isWhisperTier(spec)) file = await resolveHfFile(`hf:${WHISPER_REPO}/ggml-${spec}.bin`, options);
  else if (spec.startsWith('hf:')) file = await resolveHfFile(spec, options);
  else if (spec.includes('/') || spec.endsWith('.bin')) file = path.resolve(spec);
  else throw new ModelUnavailableError(`"${spec}" is not a Whisper tier or a file path.`, `Set ${options.variable} to tiny, base, small, medium, large-v3, large-v3-turbo (with .en / -q5_1 variants) or a ggml .bin path.`);
  if (!fs.existsSync(file)) throw new ModelUnavailableError(`Whisper model not found at ${file}.`, `Set ${options.variable} to a tier name (e.g. base.en) and run \`npm run pull\`, or to a ggml .bin path.`);
  const { nVocab } = assertWhisperGgml(file, options.variable);
  return { file, multilingual: nVocab >= 51865 };
}

/** Bytes per block and elements per block of the ggml tensor types whisper.cpp files use. */
const TYPE_SIZES: Record<number, [bytes: number, elements: number]> = {
  0: [4, 1], // F32
  1: [2, 1], // F16
  2: [18, 32], // Q4_0
  3: [20, 32], // Q4_1
  6: [22, 32], // Q5_0
  7: [24, 32], // Q5_1
  8: [34, 32], // Q8_0
};

/**
 * Walks the whole file the way whisper.cpp's loader will — header, mel filters, vocabulary, every
 * tensor record — without reading tensor data, and checks that it adds up: plausible
 * hyper-parameters, known tensor types, data inside the file, exactly the tensors the
 * hyper-parameters call for, nothing after them. (whisper.cpp segfaults on a file that fails its
 * own checks, e.g. a truncated download.)
 */
export function assertWhisperGgml(file: string, variable: string): { nVocab: number } {
  const bad = (why: string) => new ModelUnavailableError(`${file} is not a usable whisper.cpp model (${why}).`, `Point ${variable} at a ggml-*.bin from huggingface.co/${WHISPER_REPO} (re-download it if it was truncated).`);
  const size = fs.statSync(file).size;
  const fd = fs.openSync(file, 'r');
  try {
    let pos = 0;
    const read = (n: number): Buffer => {
      if (pos + n > size) throw bad(`truncated at byte ${pos} of ${size}`);
      const b = Buffer.alloc(n);
      fs.readSync(fd, b, 0, n, pos);
      pos += n;
      return b;
    };
    const i32 = () => read(4).readInt32LE(0);
    if (read(4).readUInt32LE(0) !== 0x67676d6c) throw bad('bad magic; GGUF and other formats are not whisper.cpp ggml files');
    const [nVocab, audioCtx, audioState, audioHead, audioLayer, textCtx, textState, textHead, textLayer, nMels, ftype] = Array.from({ length: 11 }, i32) as number[] as [number, number, number, number, number, number, number, number, number, number, number];
    const plausible =
      nVocab >= 51864 && nVocab <= 51866 &&
      [audioCtx, audioState, audioHead, audioLayer, textCtx, textState, textHead, textLayer].every((v) => v > 0 && v <= 65536) &&
      (nMels === 80 || nMels === 128) && ftype >= 0 && ftype < 3000 && audioState % audioHead === 0 && textState % textHead === 0;
    if (!plausible) throw bad('implausible hyper-parameters');
    const filterMels = i32();
    const filterFft = i32();
    if (filterMels !== nMels || filterFft !== 201) throw bad('bad mel filter bank');
    read(filterMels * filterFft * 4);
    const vocabCount = i32();
    if (vocabCount < 0 || vocabCount > nVocab) throw bad('bad vocabulary size');
    // the vocabulary: length-prefixed strings, read in one block for speed
    let vocabBytes = 0;
    const vocabStart = pos;
    const chunk = Buffer.alloc(Math.min(size - pos, 4 * 1024 * 1024));
    fs.readSync(fd, chunk, 0, chunk.length, pos);
    for (let i = 0; i < vocabCount; i++) {
      if (vocabBytes + 4 > chunk.length) throw bad('truncated vocabulary');
      const len = chunk.readUInt32LE(vocabBytes);
      if (len > 1024) throw bad('bad vocabulary entry');
      vocabBytes += 4 + len;
    }
    pos = vocabStart + vocabBytes;
    const expected = 7 + 15 * audioLayer + 4 + 24 * textLayer;
    let tensors = 0;
    while (pos < size) {
      const [nDims, nameLength, type] = [i32(), i32(), i32()];
      if (nDims < 1 || nDims > 3 || nameLength < 1 || nameLength > 256) throw bad(`bad tensor record at byte ${pos}`);
      const typeSize = TYPE_SIZES[type];
      if (!typeSize) throw bad(`unknown tensor type ${type}`);
      let elements = 1;
      for (let d = 0; d < nDims; d++) elements *= i32();
      read(nameLength);
      const bytes = Math.ceil(elements / typeSize[1]) * typeSize[0];
      if (pos + bytes > size) throw bad(`truncated: tensor ${tensors + 1} of ${expected} ends past the end of the file`);
      pos += bytes;
      tensors++;
    }
    if (tensors !== expected) throw bad(`${tensors} tensors, the hyper-parameters call for ${expected}`);
    return { nVocab };
  } finally {
    fs.closeSync(fd);
  }
}
