/**
 * The models file (MODELS_FILE, YAML or JSON): several models per capability, each with its own
 * settings; the first of a capability is its default. One zod schema; every problem is reported
 * at start-up with the file's path and the entry's place (`models.yaml: llm[1].context: ...`).
 * Settings an entry leaves out come from the environment variables (LLM_THREADS, STT_DEVICE, ...).
 */
import fs from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

/** Ids and aliases are what clients send as `model`: printable, no spaces. */
const name = z.string().trim().regex(/^[\w.:/@+-]{1,128}$/, 'must be 1-128 letters, digits or . : / @ + - _');
const device = z.string().trim().toLowerCase().regex(/^(auto|cpu|cuda(:\d+)?|vulkan|metal)$/, 'must be auto, cpu, cuda, cuda:N, vulkan or metal');

const common = {
  /** The name clients send as `model`. */
  id: name,
  /** Other names that pick this model. */
  aliases: z.array(name).max(64).default([]),
  /** Load at start-up (true), or on the first request that names it (false). */
  preload: z.boolean().default(true),
  /** `local`: embedded (llama.cpp / whisper.cpp); `openai`: an OpenAI-compatible server. */
  backend: z.enum(['local', 'openai']).default('local'),
  /** local: GGUF path or `hf:` URI (LLM), Whisper tier or ggml path (STT); openai: the upstream model name. */
  model: z.string().trim().min(1, 'must not be empty'),
  /** CPU threads; 0 = usable cores less one. */
  threads: z.number().int().min(0).max(1024).optional(),
  /** Sequences (LLM) or windows (STT) decoded at once. */
  parallel: z.number().int().min(1).max(64).optional(),
  device: device.optional(),
  /** Memory the model needs on its device, in MB (MODEL_MEMORY_BUDGET_MB); unset: estimated from its file, then its runner's RSS. */
  memory_mb: z.number().positive().max(16_777_216).optional(),
  /** openai backend: the server's base URL and key. */
  base_url: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
  api_key: z.string().optional(),
};

const requireBaseUrl = (entry: { backend: string; base_url?: string }, ctx: z.RefinementCtx) => {
  if (entry.backend === 'openai' && !entry.base_url) ctx.addIssue({ code: 'custom', path: ['base_url'], message: 'backend openai needs base_url' });
};

const llmEntry = z
  .strictObject({
    ...common,
    /** Context window per sequence, in tokens. */
    context: z.number().int().min(64).max(1_048_576).optional(),
    /** Layers offloaded to the GPU: `auto`, `max` or a count. */
    gpu_layers: z.union([z.enum(['auto', 'max']), z.number().int().min(0)]).optional(),
  })
  .superRefine(requireBaseUrl);

const sttEntry = z.strictObject(common).superRefine(requireBaseUrl);

/** A voice engine: the embedded eSpeak NG voice or a fish-speech (OpenAudio) server, with its defaults. */
const ttsEntry = z
  .strictObject({
    id: name,
    aliases: common.aliases,
    /** `espeak`: the embedded eSpeak NG voice (WASM); `openaudio`: a fish-speech server. */
    backend: z.enum(['espeak', 'openaudio']),
    /** The default voice: espeak a voice such as en-us, de, en-us+f3; openaudio a reference id. */
    voice: z.string().trim().min(1).max(200).optional(),
    /** openaudio: the server's base URL and key. */
    base_url: common.base_url,
    api_key: common.api_key,
    /** espeak: worker threads. */
    workers: z.number().int().min(1).max(64).optional(),
  })
  .superRefine((entry, ctx) => {
    if (entry.backend === 'openaudio' && !entry.base_url) ctx.addIssue({ code: 'custom', path: ['base_url'], message: 'backend openaudio needs base_url' });
  });

const modelsFileSchema = z
  .strictObject({
    llm: z.array(llmEntry).max(64).default([]),
    stt: z.array(sttEntry).max(64).default([]),
    /** Absent: TTS_BACKEND's chain, which any name (tts-1, ...) picks. */
    tts: z.array(ttsEntry).min(1).max(64).optional(),
  });

/** Names the OpenAI SDKs and examples send for speech-to-text; they pick the default STT model. */
export const STT_SDK_ALIASES = ['whisper-1', 'gpt-4o-mini-transcribe', 'gpt-4o-transcribe'];

/**
 * Ids and aliases must name one model across all capabilities (GET /v1/models/{id} and its
 * load/unload take a bare name), and an LLM must not take a name the SDKs send for speech-to-text
 * (`whisper-1`...: the default STT model). Checked on the raw file so it is reported beside every
 * other problem.
 */
function duplicateProblems(raw: unknown): string[] {
  const problems: string[] = [];
  const seen = new Map<string, string>();
  for (const capability of ['llm', 'stt', 'tts'] as const) {
    const entries = (raw as Record<string, unknown> | null)?.[capability];
    if (!Array.isArray(entries)) continue;
    entries.forEach((entry: { id?: unknown; aliases?: unknown } | null, i) => {
      const names: [string, unknown][] = [[`${capability}[${i}].id`, entry?.id], ...(Array.isArray(entry?.aliases) ? entry.aliases.map((a, j): [string, unknown] => [`${capability}[${i}].aliases[${j}]`, a]) : [])];
      for (const [where, name] of names) {
        if (typeof name !== 'string') continue;
        const key = name.trim();
        const before = seen.get(key);
        if (before) problems.push(`${where}: "${key}" is already used by ${before} (ids and aliases name one model, across llm, stt and tts)`);
        else if (capability === 'llm' && STT_SDK_ALIASES.includes(key)) problems.push(`${where}: "${key}" is a built-in name of the default speech-to-text model (${STT_SDK_ALIASES.join(', ')}); an LLM cannot take it`);
        else seen.set(key, where);
      }
    });
  }
  return problems;
}

export type ModelsFile = z.infer<typeof modelsFileSchema>;
export type LlmModelEntry = ModelsFile['llm'][number];
export type SttModelEntry = ModelsFile['stt'][number];
export type TtsModelEntry = NonNullable<ModelsFile['tts']>[number];

/** Reads and checks a models file; `problems` lists every issue, each prefixed with the file's path. */
export function readModelsFile(file: string): { models?: ModelsFile; problems: string[] } {
  let raw: unknown;
  try {
    const text = fs.readFileSync(file, 'utf8');
    raw = /\.json$/i.test(file) ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : `cannot be read: ${(error as Error).message.split('\n')[0]}`;
    return { problems: [`MODELS_FILE: ${file}: ${reason}`] };
  }
  const result = modelsFileSchema.safeParse(raw ?? {});
  const problems = [
    ...(result.success ? [] : result.error.issues.map((i) => `${i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '') || '(top level)'}: ${i.message}`)),
    ...duplicateProblems(raw),
  ].map((p) => `MODELS_FILE: ${file}: ${p}`);
  return result.success && problems.length === 0 ? { models: result.data, problems } : { problems };
}
