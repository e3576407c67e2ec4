import type { ReadinessState } from '../api/readiness.ts';

/** /health/ready per engine, always visible (the polling lives in useReadiness). */
export function StatusBar({ state }: { state: ReadinessState }) {
  const { readiness, unreachable, refresh } = state;
  if (unreachable)
    return (
      <div className="status" role="status" aria-label="Service status">
        <span className="dot bad" /> {unreachable}
        <button type="button" className="link" onClick={refresh}>
          check again
        </button>
      </div>
    );
  if (!readiness) return <div className="status" role="status">checking the service…</div>;
  return (
    <div className="status" role="status" aria-label="Service status">
      {Object.entries(readiness.capabilities).map(([capability, report]) => (
        <span key={capability} className="capability">
          <span className={`dot ${report.status === 'ready' ? 'ok' : report.status === 'disabled' ? 'off' : 'bad'}`} />
          {capability}: {report.engines.find((e) => e.status === 'ready')?.engine ?? report.status.replace('_', ' ')}
        </span>
      ))}
      {readiness.sessions && (
        <span className="capability">
          <span className={`dot ${readiness.sessions.status === 'ready' ? 'ok' : 'bad'}`} />
          sessions: {readiness.sessions.store}
        </span>
      )}
    </div>
  );
}

/** What is not ready and how to fix it, on the page (a tooltip is invisible on phones and to many readers). */
export function Remedies({ state }: { state: ReadinessState }) {
  const problems = Object.entries(state.readiness?.capabilities ?? {}).flatMap(([capability, report]) =>
    report.status === 'ready' || report.status === 'disabled' ? [] : report.engines.filter((e) => e.status !== 'ready' && e.detail).map((e) => ({ capability, ...e })),
  );
  const sessions = state.readiness?.sessions;
  if (problems.length === 0 && !(sessions && sessions.status !== 'ready' && sessions.detail)) return null;
  return (
    <section className="remedies" aria-label="What is not ready">
      <h2>Not ready yet</h2>
      <ul>
        {problems.map((p) => (
          <li key={`${p.capability}-${p.engine}`}>
            <strong>
              {p.capability} · {p.engine}
            </strong>{' '}
            ({p.status.replace('_', ' ')}): {p.detail}
          </li>
        ))}
        {sessions && sessions.status !== 'ready' && sessions.detail && (
          <li>
            <strong>sessions · {sessions.store}</strong>: {sessions.detail}
          </li>
        )}
      </ul>
    </section>
  );
}
