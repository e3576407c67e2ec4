import { useEffect, useState } from 'react';

/** m:ss */
export function clock(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** "Recording 0:07", ticking while shown: feedback that the microphone is taking it in. */
export function RecordTimer({ since, testId }: { since: number; testId?: string }) {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 250);
    return () => clearInterval(timer);
  }, []);
  return (
    <p className="recording" data-testid={testId}>
      <span className="rec-dot" aria-hidden="true" /> Recording <span aria-label="recorded for">{clock(now - since)}</span>
    </p>
  );
}
