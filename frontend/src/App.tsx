import { useEffect, useState, type KeyboardEvent } from 'react';
import { unauthorized } from './api/client.ts';
import { useReadiness } from './api/readiness.ts';
import { loadConnection, saveConnection, type Connection } from './api/settings.ts';
import { ConnectionDrawer } from './components/ConnectionDrawer.tsx';
import { Remedies, StatusBar } from './components/StatusBar.tsx';
import { DialoguePanel } from './panels/DialoguePanel.tsx';
import { SttPanel } from './panels/SttPanel.tsx';
import { TextPanel } from './panels/TextPanel.tsx';
import { TtsPanel } from './panels/TtsPanel.tsx';

const TABS = [
  ['text', 'Text'],
  ['stt', 'Speech to text'],
  ['tts', 'Text to speech'],
  ['dialogue', 'Dialogue'],
] as const;
type Tab = (typeof TABS)[number][0];

export const NEEDS_KEY = 'This server needs an API key: enter it below (it stays in this browser).';

export function App() {
  const [connection, setConnection] = useState<Connection>(loadConnection);
  // the drawer, and why it opened by itself (a 401)
  const [drawer, setDrawer] = useState<{ notice?: string } | null>(null);
  const readiness = useReadiness(connection);
  const [tab, setTab] = useState<Tab>(() => (TABS.some(([id]) => `#${id}` === window.location.hash) ? (window.location.hash.slice(1) as Tab) : 'text'));
  const select = (id: Tab) => {
    setTab(id);
    history.replaceState(null, '', `#${id}`);
  };
  /** Arrow keys, Home and End move between tabs (one tab stop for the whole list). */
  const onTabKey = (e: KeyboardEvent<HTMLElement>) => {
    const at = TABS.findIndex(([id]) => id === tab);
    const to = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: TABS.length - 1 }[e.key];
    if (to === undefined) return;
    e.preventDefault();
    const [id] = TABS[(to + TABS.length) % TABS.length]!;
    select(id);
    document.getElementById(`tab-${id}`)?.focus();
  };
  // a link or the address bar changing #text / #stt / #tts / #dialogue switches the tab
  useEffect(() => {
    const follow = () => {
      const id = window.location.hash.slice(1);
      if (TABS.some(([t]) => t === id)) setTab(id as Tab);
    };
    window.addEventListener('hashchange', follow);
    return () => window.removeEventListener('hashchange', follow);
  }, []);
  useEffect(() => {
    const open = () => setDrawer({ notice: NEEDS_KEY });
    unauthorized.addEventListener('unauthorized', open);
    return () => unauthorized.removeEventListener('unauthorized', open);
  }, []);
  // the reference is served by the same service (a separate build elsewhere points at its base URL)
  const docsUrl = `${connection.baseUrl}/docs`;
  return (
    <div className="app">
      <header>
        <h1>gemma-3-api playground</h1>
        <StatusBar state={readiness} />
        <div className="row">
          <a href={docsUrl} target="_blank" rel="noreferrer">
            API reference
          </a>
          <button onClick={() => setDrawer({})} aria-haspopup="dialog">
            Connection settings
          </button>
        </div>
      </header>
      {drawer && (
        <ConnectionDrawer
          connection={connection}
          notice={drawer.notice}
          onClose={() => setDrawer(null)}
          onSave={(c) => {
            saveConnection(c);
            setConnection(c);
            setDrawer(null);
          }}
        />
      )}
      <Remedies state={readiness} />
      <nav role="tablist" aria-label="Capabilities" onKeyDown={onTabKey}>
        {TABS.map(([id, label]) => (
          <button key={id} role="tab" id={`tab-${id}`} aria-selected={tab === id} aria-controls={`panel-${id}`} tabIndex={tab === id ? 0 : -1} onClick={() => select(id)}>
            {label}
          </button>
        ))}
      </nav>
      <main>
        <div role="tabpanel" id={`panel-${tab}`} aria-labelledby={`tab-${tab}`}>
          {tab === 'text' && <TextPanel connection={connection} readiness={readiness} />}
          {tab === 'stt' && <SttPanel connection={connection} readiness={readiness} />}
          {tab === 'tts' && <TtsPanel connection={connection} readiness={readiness} />}
          {tab === 'dialogue' && <DialoguePanel connection={connection} readiness={readiness} />}
        </div>
      </main>
    </div>
  );
}
