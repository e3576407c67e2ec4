/**
 * A real service process on the tiny generated models, every engine ready, with a /health prober
 * already running: what the reliability tests that attack the audio routes start from.
 */
import { tinyGemmaPath, tinyWhisperPath } from './models.ts';
import { HealthProber } from './health-prober.ts';
import { freePort, spawnService, waitForHealth, waitForReady, type ServiceProcess } from './process.ts';

export interface ProbedService {
  service: ServiceProcess;
  prober: HealthProber;
  /** Stops the prober and the process (SIGTERM). */
  stop(): Promise<void>;
}

export async function startProbedTinyService(env: Record<string, string>, readyTimeoutMs = 120_000): Promise<ProbedService> {
  const service = spawnService(
    { GEMMA_MODEL: tinyGemmaPath(), LOCAL_WHISPER_MODEL: tinyWhisperPath(), STT_BACKEND: 'local', TTS_BACKEND: 'embedded', LLM_THREADS: '1', WHISPER_THREADS: '1', ...env },
    await freePort(),
  );
  await waitForHealth(service.url, 60_000);
  if (!(await waitForReady(service.url, readyTimeoutMs))) {
    service.child.kill('SIGTERM');
    throw new Error(`the engines did not become ready within ${readyTimeoutMs / 1000} s`);
  }
  const prober = new HealthProber(service.url);
  prober.start();
  return {
    service,
    prober,
    async stop() {
      await prober.stop();
      service.child.kill('SIGTERM');
      await service.exited;
    },
  };
}
