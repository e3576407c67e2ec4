import { useCallback, useEffect, useRef, useState } from 'react';
import { openMicrophone } from './mic.ts';

/**
 * Records one clip with MediaRecorder: `toggle` starts (asking for the microphone) and stops; the
 * clip goes to the latest `onClip` when recording stops, a failure to open the microphone to
 * `onError`. Unmounting (leaving the tab) stops a recording without delivering it and releases the
 * microphone. Shared by the Speech-to-text panel and the voice cloning form.
 */
export function useRecorder(onClip: (blob: Blob, name: string) => void, onError: (error: unknown) => void) {
  const recorder = useRef<MediaRecorder | null>(null);
  // when the recording started (null: not recording), for the timer
  const [since, setSince] = useState<number | null>(null);
  // the handlers of the latest render: a recording started earlier delivers with current state
  const handlers = useRef({ onClip, onError });
  useEffect(() => {
    handlers.current = { onClip, onError };
  });

  useEffect(
    () => () => {
      const rec = recorder.current;
      recorder.current = null;
      if (rec) {
        rec.onstop = null;
        if (rec.state !== 'inactive') rec.stop();
        for (const t of rec.stream.getTracks()) t.stop();
      }
    },
    [],
  );

  const toggle = useCallback(async () => {
    if (recorder.current) {
      recorder.current.stop();
      return;
    }
    try {
      const stream = await openMicrophone({ audio: true });
      const chunks: Blob[] = [];
      const rec = new MediaRecorder(stream);
      rec.ondataavailable = (e) => chunks.push(e.data);
      rec.onstop = () => {
        for (const t of stream.getTracks()) t.stop();
        recorder.current = null;
        setSince(null);
        handlers.current.onClip(new Blob(chunks, { type: rec.mimeType }), 'recording.webm');
      };
      rec.start();
      recorder.current = rec;
      setSince(Date.now());
    } catch (e) {
      handlers.current.onError(e);
    }
  }, []);

  return { recordingSince: since, toggle };
}
