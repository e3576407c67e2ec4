/**
 * A service process with a models file of two tiny LLMs and two tiny Whisper models, for the tests
 * of routing by `model`: `tiny` (the default LLM, alias `gemma-small`; ends its turn with
 * TINY_GEMMA_REPLY) and `looper` (loaded on its first request; repeats the reply to max_tokens),
 * `whisper-a` (the default STT model; TINY_WHISPER_TEXT) and `whisper-b` (by default the model whose
 * no_speech_prob is 0.5; a test may name another whisper file).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { halfNoSpeechWhisperPath, loopingGemmaPath, tinyGemmaPath, tinyWhisperPath } from './models.ts';
import { spawnReadyService, stopService, type ServiceProcess } from './process.ts';

export interface ModelsService {
  service: ServiceProcess;
  /** SIGTERM, wait for the exit, remove the models file. */
  close(): Promise<void>;
}

/** Starts the service on the two-by-two models file and waits until it is ready. `env` adds to (or overrides) its environment. */
export async function startModelsService(env: Record<string, string> = {}, options: { whisperB?: string } = {}): Promise<ModelsService> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'models-file-'));
  const file = path.join(dir, 'models.yaml');
  fs.writeFileSync(
    file,
    [
      'llm:',
      '  - id: tiny',
      `    model: ${tinyGemmaPath()}`,
      '    aliases: [gemma-small]',
      '    context: 512',
      '    parallel: 1',
      '    threads: 1',
      '  - id: looper # loads on its first request',
      `    model: ${loopingGemmaPath()}`,
      '    context: 1024',
      '    parallel: 1',
      '    threads: 1',
      '    preload: false',
      'stt:',
      '  - id: whisper-a',
      `    model: ${tinyWhisperPath()}`,
      '  - id: whisper-b',
      `    model: ${options.whisperB ?? halfNoSpeechWhisperPath()}`,
      '    threads: 1',
    ].join('\n'),
  );
  const service = await spawnReadyService({ MODELS_FILE: file, LLM_DEVICE: 'cpu', STT_BACKEND: 'local', TTS_BACKEND: 'embedded', WHISPER_THREADS: '1', ...env });
  return {
    service,
    close: async () => {
      await stopService(service);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
