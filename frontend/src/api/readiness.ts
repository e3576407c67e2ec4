/**
 * /health/ready, polled for the whole page: the status bar, the remedies shown on the page and
 * the actions that need an engine all read it. While the service is down or an engine stays
 * unavailable (missing model, error) the poll backs off — 5 s doubling to 60 s — so the browser's
 * console is not filled with a failed request every 5 s; while an engine is loading it stays at 5 s.
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import { headers } from './client.ts';
import type { Connection } from './settings.ts';

export interface EngineReport {
  engine: string;
  status: string;
  detail?: string;
}

export interface Readiness {
  status: string;
  capabilities: Record<string, { status: string; engines: EngineReport[] }>;
  sessions?: { store: string; status: string; detail?: string };
}

export interface ReadinessState {
  readiness: Readiness | null;
  unreachable: string | null;
  /** Poll now (a "check again" button). */
  refresh: () => void;
}

export const POLL_MS = 5000;
export const MAX_POLL_MS = 60_000;

export function useReadiness(connection: Connection): ReadinessState {
  const [readiness, setReadiness] = useState<Readiness | null>(null);
  const [unreachable, setUnreachable] = useState<string | null>(null);
  const poke = useRef<() => void>(() => undefined);
  // the fields, not the object: a re-render with an equal connection does not restart polling
  const { baseUrl, apiKey, keyHeader } = connection;
  useEffect(() => {
    const current: Connection = { baseUrl, apiKey, keyHeader };
    let cancelled = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let delay = POLL_MS;
    const poll = async () => {
      clearTimeout(timer);
      let steady = false;
      try {
        // 503 (not ready) still carries the report
        // with API keys on, the server tells the remedies (`detail`) only to a request with a valid key
        const res = await fetch(`${current.baseUrl}/health/ready`, { headers: headers(current) });
        const body = (await res.json()) as Readiness;
        if (cancelled) return;
        setReadiness(body);
        setUnreachable(null);
        const engines = Object.values(body.capabilities).flatMap((c) => c.engines);
        steady = body.status === 'ready' || engines.some((e) => e.status === 'loading');
      } catch (error) {
        if (cancelled) return;
        setUnreachable(`cannot reach ${current.baseUrl} (${(error as Error).message})`);
      }
      delay = steady ? POLL_MS : Math.min(delay * 2, MAX_POLL_MS);
      timer = setTimeout(() => void poll(), steady ? POLL_MS : delay);
    };
    poke.current = () => {
      delay = POLL_MS;
      void poll();
    };
    void poll();
    return () => {
      cancelled = true;
      clearTimeout(timer);
    };
  }, [baseUrl, apiKey, keyHeader]);
  const refresh = useCallback(() => poke.current(), []);
  return { readiness, unreachable, refresh };
}

/** Why `capability` cannot be used now (undefined when it can, or while nothing is known yet). */
export function notReadyReason(state: ReadinessState, capability: 'llm' | 'stt' | 'tts'): string | undefined {
  if (state.unreachable) return 'the service cannot be reached';
  const report = state.readiness?.capabilities[capability];
  if (!report || report.status === 'ready') return undefined;
  const names = { llm: 'text generation', stt: 'speech to text', tts: 'text to speech' } as const;
  if (report.status === 'disabled') return `${names[capability]} is disabled on this server`;
  const engine = report.engines.find((e) => e.status === 'loading') ?? report.engines[0];
  if (engine?.status === 'loading') return `${names[capability]} is loading (${engine.engine})`;
  return `${names[capability]} is not available${engine ? ` (${engine.engine}: ${engine.status.replace('_', ' ')})` : ''}`;
}
