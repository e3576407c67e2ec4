import { useEffect, useRef, useState, type KeyboardEvent } from 'react';
import type { Connection } from '../api/settings.ts';

/** Base URL and API key (kept in localStorage by the caller). */
export function ConnectionDrawer({ connection, onSave, onClose, notice }: { connection: Connection; onSave: (c: Connection) => void; onClose: () => void; notice?: string }) {
  const [draft, setDraft] = useState(connection);
  const dialog = useRef<HTMLDivElement>(null);
  // focus moves into the drawer and, when it closes, back to whatever opened it
  useEffect(() => {
    const opener = document.activeElement as HTMLElement | null;
    if (!dialog.current?.contains(document.activeElement)) dialog.current?.querySelector<HTMLElement>('input')?.focus();
    return () => opener?.focus?.();
  }, []);
  /** Escape closes; Tab cycles inside (a modal dialog keeps focus). */
  const onKeyDown = (e: KeyboardEvent<HTMLDivElement>) => {
    if (e.key === 'Escape') {
      e.preventDefault();
      onClose();
      return;
    }
    if (e.key !== 'Tab' || !dialog.current) return;
    const focusable = [...dialog.current.querySelectorAll<HTMLElement>('input, button, select, textarea, a[href]')].filter((el) => !el.hasAttribute('disabled'));
    const first = focusable[0];
    const last = focusable.at(-1);
    if (e.shiftKey && document.activeElement === first) {
      e.preventDefault();
      last?.focus();
    } else if (!e.shiftKey && document.activeElement === last) {
      e.preventDefault();
      first?.focus();
    }
  };
  return (
    <div className="drawer" role="dialog" aria-modal="true" aria-labelledby="connection-title" ref={dialog} onKeyDown={onKeyDown}>
      <h2 id="connection-title">Connection settings</h2>
      {notice && (
        <p className="notice" role="alert">
          {notice}
        </p>
      )}
      <form
        onSubmit={(e) => {
          e.preventDefault();
          onSave({ ...draft, baseUrl: draft.baseUrl.trim().replace(/\/+$/, '') });
        }}
      >
        <label>
          Base URL
          <input value={draft.baseUrl} onChange={(e) => setDraft({ ...draft, baseUrl: e.target.value })} type="url" required />
        </label>
        <label>
          API key
          <input value={draft.apiKey} onChange={(e) => setDraft({ ...draft, apiKey: e.target.value })} type="password" autoComplete="off" placeholder="(none)" autoFocus={notice !== undefined} />
        </label>
        <label>
          API key header
          <input value={draft.keyHeader} onChange={(e) => setDraft({ ...draft, keyHeader: e.target.value })} />
        </label>
        <div className="row">
          <button type="submit">Save</button>
          <button type="button" onClick={onClose}>
            Cancel
          </button>
        </div>
      </form>
    </div>
  );
}
