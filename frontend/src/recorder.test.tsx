/**
 * useRecorder, the one recorder behind the Speech-to-text panel's Record button and the voice
 * cloning form's Record a clip: the clip goes where each wants it (transcribed / shown as the
 * clip), the microphone is released when recording stops or the tab is left mid-recording.
 */
import { act, cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Connection } from './api/settings.ts';
import { CloneVoice } from './components/CloneVoice.tsx';
import { SttPanel } from './panels/SttPanel.tsx';

const connection: Connection = { baseUrl: 'http://api.test', apiKey: 'k-1', keyHeader: 'X-API-Key' };

/** A fake microphone and MediaRecorder: records which tracks were stopped and which recorders ran. */
function fakeMedia() {
  const tracks: { stopped: boolean }[] = [];
  const recorders: FakeRecorder[] = [];
  class FakeRecorder {
    state = 'inactive';
    mimeType = 'audio/webm';
    ondataavailable: ((e: { data: Blob }) => void) | null = null;
    onstop: (() => void) | null = null;
    constructor(readonly stream: MediaStream) {
      recorders.push(this);
    }
    start() {
      this.state = 'recording';
    }
    stop() {
      this.state = 'inactive';
      this.ondataavailable?.({ data: new Blob(['sound'], { type: 'audio/webm' }) });
      this.onstop?.();
    }
  }
  const getUserMedia = vi.fn(async () => {
    const track = { stopped: false, stop() { this.stopped = true; } };
    tracks.push(track);
    return { getTracks: () => [track] } as unknown as MediaStream;
  });
  vi.stubGlobal('MediaRecorder', FakeRecorder);
  Object.defineProperty(navigator, 'mediaDevices', { value: { getUserMedia }, configurable: true });
  URL.createObjectURL = vi.fn(() => 'blob:clip');
  URL.revokeObjectURL = vi.fn();
  return { tracks, recorders };
}

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe('useRecorder', () => {
  it('Speech to text: Record then Stop transcribes the clip and releases the microphone', async () => {
    const media = fakeMedia();
    const fetchMock = vi.fn(async () => new Response(JSON.stringify({ text: 'heard you', language: 'en', duration: 1, engine: 'whisper-cpp', segments: [] }), { status: 200, headers: { 'content-type': 'application/json' } }));
    vi.stubGlobal('fetch', fetchMock);
    render(<SttPanel connection={connection} />);
    await act(async () => fireEvent.click(screen.getByRole('button', { name: 'Record' })));
    expect(screen.getByRole('button', { name: 'Stop recording' })).toBeTruthy();
    await act(async () => fireEvent.click(screen.getByRole('button', { name: 'Stop recording' })));
    await waitFor(() => expect(screen.getByText(/heard you/)).toBeTruthy());
    const [url, init] = fetchMock.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe('http://api.test/v1/speech-to-text');
    expect(((init.body as FormData).get('file') as File).name).toBe('recording.webm');
    expect(media.tracks.map((t) => t.stopped)).toEqual([true]);
  });

  it('Speech to text: a setting changed while recording applies to that recording (the latest handler, not the one from its start)', async () => {
    fakeMedia();
    const fetchMock = vi.fn(async () => new Response(JSON.stringify({ text: 'x', language: 'en', duration: 1, engine: 'whisper-cpp', segments: [], words: [] }), { status: 200, headers: { 'content-type': 'application/json' } }));
    vi.stubGlobal('fetch', fetchMock);
    render(<SttPanel connection={connection} />);
    await act(async () => fireEvent.click(screen.getByRole('button', { name: 'Record' })));
    await act(async () => fireEvent.click(screen.getByRole('checkbox', { name: /word timestamps/ })));
    await act(async () => fireEvent.click(screen.getByRole('button', { name: 'Stop recording' })));
    await waitFor(() => expect(fetchMock).toHaveBeenCalledTimes(1));
    const init = (fetchMock.mock.calls[0] as unknown as [string, RequestInit])[1];
    expect((init.body as FormData).get('timestamp_granularities[]')).toBe('word');
  });

  it('Clone a voice: the recording becomes the clip; leaving mid-recording stops it and releases the microphone, delivering nothing', async () => {
    const media = fakeMedia();
    const view = render(<CloneVoice connection={connection} onAdded={() => undefined} />);
    await act(async () => fireEvent.click(screen.getByRole('button', { name: 'Record a clip' })));
    await act(async () => fireEvent.click(screen.getByRole('button', { name: 'Stop recording' })));
    expect(screen.getByTestId('clone-clip').textContent).toContain('recording.webm');
    expect(media.tracks[0]!.stopped).toBe(true);

    await act(async () => fireEvent.click(screen.getByRole('button', { name: 'Record a clip' })));
    expect(media.recorders[1]!.state).toBe('recording');
    view.unmount();
    expect(media.recorders[1]!.state).toBe('inactive');
    expect(media.tracks[1]!.stopped).toBe(true);
  });

  it('a microphone that cannot open is shown as an error, and nothing records', async () => {
    fakeMedia();
    Object.defineProperty(navigator, 'mediaDevices', { value: { getUserMedia: vi.fn(async () => Promise.reject(new DOMException('denied', 'NotAllowedError'))) }, configurable: true });
    render(<CloneVoice connection={connection} onAdded={() => undefined} />);
    await act(async () => fireEvent.click(screen.getByRole('button', { name: 'Record a clip' })));
    await waitFor(() => expect(screen.getByRole('alert')).toBeTruthy());
    expect(screen.getByRole('button', { name: 'Record a clip' })).toBeTruthy();
  });
});
