import { useEffect, useState } from 'react';
import type { Connection } from '../api/settings.ts';

interface Readiness {
  status: string;
  capabilities: Record<string, { status: string; engines: { engine: string; status: string; detail?: string }[] }>;
  sessions?: { store: string; status: string; detail?: string };
}

/** /health/ready per engine, refreshed every 5 s, always visible. */
export function StatusBar({ connection }: { connection: Connection }) {
  const [readiness, setReadiness] = useState<Readiness | null>(null);
  const [unreachable, setUnreachable] = useState<string | null>(null);
  useEffect(() => {
    let cancelled = false;
    const poll = async () => {
      try {
        // 503 (not ready) still carries the report
        const res = await fetch(`${connection.baseUrl}/health/ready`).catch((e: Error) => {
          throw new Error(`cannot reach ${connection.baseUrl}: ${e.message}`);
        });
        const body = (await res.json()) as Readiness;
        if (!cancelled) {
          setReadiness(body);
          setUnreachable(null);
        }
      } catch (error) {
        if (!cancelled) setUnreachable((error as Error).message);
      }
    };
    void poll();
    const timer = setInterval(() => void poll(), 5000);
    return () => {
      cancelled = true;
      clearInterval(timer);
    };
  }, [connection.baseUrl]);
  if (unreachable) return <div className="status" role="status"><span className="dot bad" /> {unreachable}</div>;
  if (!readiness) return <div className="status" role="status">checking the service…</div>;
  return (
    <div className="status" role="status" aria-label="Service status">
      {Object.entries(readiness.capabilities).map(([capability, report]) => (
        <span key={capability} className="capability" title={report.engines.map((e) => `${e.engine}: ${e.status}${e.detail ? ` — ${e.detail}` : ''}`).join('\n')}>
          <span className={`dot ${report.status === 'ready' ? 'ok' : report.status === 'disabled' ? 'off' : 'bad'}`} />
          {capability}: {report.engines.find((e) => e.status === 'ready')?.engine ?? report.status}
        </span>
      ))}
      {readiness.sessions && (
        <span className="capability" title={readiness.sessions.detail ?? ''}>
          <span className={`dot ${readiness.sessions.status === 'ready' ? 'ok' : 'bad'}`} />
          sessions: {readiness.sessions.store}
        </span>
      )}
    </div>
  );
}
