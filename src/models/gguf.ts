/** Finds the GGUF file a setting names (a path or an `hf:` URI) and checks it looks like one. */
import fs from 'node:fs';
import path from 'node:path';
import { ModelUnavailableError } from './errors.ts';
import { resolveHfFile, type HfOptions } from './hugging-face.ts';

export async function resolveGguf(spec: string, options: HfOptions): Promise<string> {
  const file = spec.startsWith('hf:') ? await resolveHfFile(spec, options) : path.resolve(spec);
  if (!fs.existsSync(file)) {
    throw new ModelUnavailableError(
      `GGUF model not found at ${file}.`,
      `Set ${options.variable} to a GGUF file path or an hf:<org>/<repo>/<file>.gguf URI (e.g. hf:ggml-org/gemma-3-1b-it-GGUF/gemma-3-1b-it-Q4_K_M.gguf) and run \`npm run pull\`.`,
    );
  }
  assertGguf(file, options.variable);
  return file;
}

/** Cheap sanity check before handing a file to llama.cpp: magic and a plausible size. */
export function assertGguf(file: string, variable: string): void {
  const fd = fs.openSync(file, 'r');
  try {
    const head = Buffer.alloc(8);
    const read = fs.readSync(fd, head, 0, 8, 0);
    if (read < 8 || head.toString('ascii', 0, 4) !== 'GGUF') {
      throw new ModelUnavailableError(`${file} is not a GGUF file (bad magic).`, `Point ${variable} at a .gguf model (re-download it if it was truncated).`);
    }
  } finally {
    fs.closeSync(fd);
  }
}
