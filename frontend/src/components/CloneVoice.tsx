import { useRef, useState } from 'react';
import { request } from '../api/client.ts';
import type { Connection } from '../api/settings.ts';
import { useRecorder } from '../audio/useRecorder.ts';
import { ErrorBox } from './ErrorBox.tsx';
import { RecordTimer } from './RecordTimer.tsx';

/**
 * A cloned voice for fish-speech: a clip (uploaded or recorded here) and its transcript go to
 * POST /v1/audio/voices under a name; that name then works as the voice.
 */
export function CloneVoice({ connection, onAdded }: { connection: Connection; onAdded: (id: string) => void }) {
  const [id, setId] = useState('');
  const [text, setText] = useState('');
  const [clip, setClip] = useState<{ blob: Blob; name: string; url: string } | null>(null);
  const fileInput = useRef<HTMLInputElement | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [added, setAdded] = useState('');

  const takeClip = (blob: Blob, name: string) =>
    setClip((old) => {
      if (old) URL.revokeObjectURL(old.url);
      return { blob, name, url: URL.createObjectURL(blob) };
    });

  // the recording becomes the clip (replacing a file picked before); leaving the tab stops it
  const { recordingSince, toggle } = useRecorder((blob, name) => {
    takeClip(blob, name);
    if (fileInput.current) fileInput.current.value = '';
  }, setError);

  function toggleRecording() {
    if (recordingSince === null) setError(null);
    void toggle();
  }

  async function add() {
    if (!clip) return;
    setBusy(true);
    setError(null);
    setAdded('');
    try {
      const form = new FormData();
      form.set('id', id.trim());
      form.set('text', text.trim());
      form.set('file', clip.blob, clip.name);
      const res = await request(connection, '/v1/audio/voices', { method: 'POST', body: form });
      const voice = (await res.json()) as { id: string };
      setAdded(`Voice “${voice.id}” added and selected: Speak uses it.`);
      onAdded(voice.id);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }

  return (
    <details className="clone" data-testid="clone-voice">
      <summary>Clone a voice (fish-speech)</summary>
      <p className="meta">A few seconds of one speaker and the exact words spoken. The name becomes a voice.</p>
      <div className="row">
        <label>
          Voice name
          <input value={id} onChange={(e) => setId(e.target.value)} placeholder="letters, digits, - _ or spaces" maxLength={255} />
        </label>
        <label>
          Reference clip
          <input ref={fileInput} type="file" accept="audio/*,video/webm" onChange={(e) => e.target.files?.[0] && takeClip(e.target.files[0], e.target.files[0].name)} />
        </label>
        <button type="button" onClick={toggleRecording} aria-pressed={recordingSince !== null}>
          {recordingSince !== null ? 'Stop recording' : 'Record a clip'}
        </button>
      </div>
      {recordingSince !== null && <RecordTimer since={recordingSince} testId="clone-recording" />}
      {clip && (
        <p className="row clip" data-testid="clone-clip">
          <span className="meta">Clip: {clip.name}</span>
          <audio controls src={clip.url} />
        </p>
      )}
      <label>
        Transcript of the clip
        <textarea value={text} onChange={(e) => setText(e.target.value)} rows={2} />
      </label>
      <div className="row">
        <button type="button" onClick={() => void add()} disabled={busy || !clip || !id.trim() || !text.trim() || recordingSince !== null}>
          Add voice
        </button>
      </div>
      <ErrorBox error={error} />
      {added && (
        <p className="meta" role="status">
          {added}
        </p>
      )}
    </details>
  );
}
