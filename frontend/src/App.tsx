import { useState } from 'react';
import { loadConnection, saveConnection, type Connection } from './api/settings.ts';
import { ConnectionDrawer } from './components/ConnectionDrawer.tsx';
import { StatusBar } from './components/StatusBar.tsx';
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

export function App() {
  const [connection, setConnection] = useState<Connection>(loadConnection);
  const [drawer, setDrawer] = useState(false);
  const [tab, setTab] = useState<Tab>(() => (TABS.some(([id]) => `#${id}` === window.location.hash) ? (window.location.hash.slice(1) as Tab) : 'text'));
  const select = (id: Tab) => {
    setTab(id);
    history.replaceState(null, '', `#${id}`);
  };
  return (
    <div className="app">
      <header>
        <h1>gemma-3-api playground</h1>
        <StatusBar connection={connection} />
        <button onClick={() => setDrawer(true)} aria-haspopup="dialog">
          Connection settings
        </button>
      </header>
      {drawer && (
        <ConnectionDrawer
          connection={connection}
          onClose={() => setDrawer(false)}
          onSave={(c) => {
            saveConnection(c);
            setConnection(c);
            setDrawer(false);
          }}
        />
      )}
      <nav role="tablist" aria-label="Capabilities">
        {TABS.map(([id, label]) => (
          <button key={id} role="tab" id={`tab-${id}`} aria-selected={tab === id} aria-controls={`panel-${id}`} onClick={() => select(id)}>
            {label}
          </button>
        ))}
      </nav>
      <main role="tabpanel" id={`panel-${tab}`} aria-labelledby={`tab-${tab}`}>
        {tab === 'text' && <TextPanel connection={connection} />}
        {tab === 'stt' && <SttPanel connection={connection} />}
        {tab === 'tts' && <TtsPanel connection={connection} />}
        {tab === 'dialogue' && <DialoguePanel connection={connection} />}
      </main>
    </div>
  );
}
