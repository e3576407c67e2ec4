/**
 * What `npm run pull` downloads: every local model of MODELS_FILE (each under its id), or — without
 * a models file — the one LLM and Whisper model the variables name. Models served by an
 * OpenAI-compatible server have nothing to pull. Downloads go to the Hugging Face cache with the
 * progress the service logs at start-up (`model download progress`).
 */
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import { resolveGguf } from './gguf.ts';
import { hfSettings } from './hugging-face.ts';
import { readModelsFile } from './models-file.ts';
import { resolveWhisperModel } from './whisper.ts';

export interface PullTarget {
  /** The model's id (MODELS_FILE) or the variable that names it. */
  id: string;
  aliases: string[];
  capability: 'llm' | 'stt';
  /** GGUF path or `hf:` URI (LLM), Whisper tier or ggml path (STT). */
  spec: string;
  /** Where the spec was configured, quoted in errors. */
  variable: string;
}

export function pullTargets(config: Config): PullTarget[] {
  if (config.MODELS_FILE) {
    const { models, problems } = readModelsFile(config.MODELS_FILE);
    if (!models) throw new Error(problems.join('\n'));
    return (['llm', 'stt'] as const).flatMap((capability) =>
      models[capability].flatMap((m, i): PullTarget[] =>
        m.backend === 'local' ? [{ id: m.id, aliases: m.aliases, capability, spec: m.model, variable: `${config.MODELS_FILE}: ${capability}[${i}].model` }] : [],
      ),
    );
  }
  const targets: PullTarget[] = [];
  if (config.LLM_BACKEND === 'local') targets.push({ id: 'GEMMA_MODEL', aliases: [], capability: 'llm', spec: config.GEMMA_MODEL, variable: 'GEMMA_MODEL' });
  if (config.STT_BACKEND.includes('local') && config.ENABLE_LOCAL_WHISPER) targets.push({ id: 'LOCAL_WHISPER_MODEL', aliases: [], capability: 'stt', spec: config.LOCAL_WHISPER_MODEL, variable: 'LOCAL_WHISPER_MODEL' });
  return targets;
}

/** The targets a name picks (by id or alias); none given: all. An unknown name is an error listing the ids. */
export function selectTargets(targets: PullTarget[], names: string[]): PullTarget[] {
  if (names.length === 0) return targets;
  return names.map((name) => {
    const found = targets.find((t) => t.id === name || t.aliases.includes(name));
    if (!found) throw new Error(`Unknown model '${name}'; models to pull: ${targets.map((t) => t.id).join(', ') || '(none: every model is served remotely)'}`);
    return found;
  });
}

/** Downloads (or finds in the cache) one target; returns the local file. */
export async function pullOne(target: PullTarget, config: Config, logger: Logger): Promise<string> {
  const options = { ...hfSettings(config), download: true, logger, variable: target.variable };
  return target.capability === 'llm' ? resolveGguf(target.spec, options) : (await resolveWhisperModel(target.spec, options)).file;
}
