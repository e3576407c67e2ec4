/**
 * fetch for calls to upstream servers (the remote LLM, the hosted transcription API, fish-speech)
 * that counts every HTTP attempt — retries included — in upstream_requests_total{upstream,outcome},
 * outcome being the status code or `connection_error`/`timeout`/`aborted`. Faults then show up
 * per kind (503s being retried, refused connections, timeouts) before they become a client's error.
 */
import type { Metrics } from './metrics.ts';

export type Upstream = 'llm' | 'stt' | 'openaudio';

function failure(error: unknown, signal: AbortSignal | null | undefined): string {
  const name = (error as { name?: string } | null)?.name;
  const reason = (signal?.reason as { name?: string } | undefined)?.name;
  if (name === 'TimeoutError' || reason === 'TimeoutError') return 'timeout';
  if (name === 'AbortError' || signal?.aborted) return 'aborted'; // the caller left, or a client-side timeout without a reason
  return 'connection_error';
}

export function countingFetch(metrics: Metrics, upstream: Upstream, base: typeof fetch = globalThis.fetch): typeof fetch {
  const counter = metrics.upstreamRequests;
  return async (input, init) => {
    try {
      const response = await base(input, init);
      counter.inc({ upstream, outcome: String(response.status) });
      return response;
    } catch (error) {
      counter.inc({ upstream, outcome: failure(error, init?.signal) });
      throw error;
    }
  };
}
