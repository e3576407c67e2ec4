/** Component and client tests (vitest + jsdom + Testing Library); the browser e2e is test/e2e in the root. */
import { act, cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ApiProblem, readSse, request, socket } from './api/client.ts';
import type { Connection } from './api/settings.ts';
import { wavBlob } from './audio/pcm-player.ts';
import { ConnectionDrawer } from './components/ConnectionDrawer.tsx';
import { ErrorBox } from './components/ErrorBox.tsx';
import { LatencyBar } from './panels/DialoguePanel.tsx';
import { TextPanel } from './panels/TextPanel.tsx';

const connection: Connection = { baseUrl: 'http://api.test', apiKey: 'k-1', keyHeader: 'X-API-Key' };

function sseResponse(frames: string[], delayMs = 0): Response {
  const encoder = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    async start(controller) {
      for (const f of frames) {
        if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
        controller.enqueue(encoder.encode(f));
      }
      controller.close();
    },
  });
  return new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } });
}

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe('api client', () => {
  it('reads SSE events split across chunks', async () => {
    const events = [];
    for await (const e of readSse(sseResponse(['event: delta\nda', 'ta: {"text":"a"}\n\nevent: done\n', 'data: {}\n\n']))) events.push(e);
    expect(events).toEqual([
      { event: 'delta', data: '{"text":"a"}' },
      { event: 'done', data: '{}' },
    ]);
  });

  it('sends the key in the configured header and turns the error envelope into a readable problem', async () => {
    const fetchMock = vi.fn(async () => new Response(JSON.stringify({ error: { message: 'prompt: Required', code: 'invalid_value' }, request_id: 'req-9' }), { status: 400 }));
    vi.stubGlobal('fetch', fetchMock);
    const error = await request(connection, '/v1/generate', { method: 'POST', json: {} }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiProblem);
    expect((error as ApiProblem).message).toBe('prompt: Required');
    expect((error as ApiProblem).requestId).toBe('req-9');
    const init = (fetchMock.mock.calls[0] as unknown as [string, RequestInit])[1];
    expect((init.headers as Record<string, string>)['X-API-Key']).toBe('k-1');
  });

  it('opens WebSockets with the key as the api_key subprotocol next to gemma-3-api', () => {
    const opened: { url: string; protocols: string[] }[] = [];
    vi.stubGlobal(
      'WebSocket',
      class {
        binaryType = '';
        constructor(url: string, protocols: string[]) {
          opened.push({ url, protocols });
        }
      },
    );
    socket({ ...connection, baseUrl: 'https://api.test' }, '/ws/tts');
    expect(opened).toEqual([{ url: 'wss://api.test/ws/tts', protocols: ['gemma-3-api', 'api_key.k-1'] }]);
  });

  it('writes a valid WAV header around PCM chunks', async () => {
    const blob = wavBlob([Int16Array.of(1, 2), Int16Array.of(3)], 16000);
    const bytes = new DataView(await blob.arrayBuffer());
    expect(blob.size).toBe(44 + 6);
    expect(bytes.getUint32(24, true)).toBe(16000);
    expect(bytes.getUint32(40, true)).toBe(6);
    expect(bytes.getInt16(48, true)).toBe(3);
  });
});

describe('components', () => {
  it('ErrorBox shows the message and the request id as an alert', () => {
    render(<ErrorBox error={new ApiProblem('The model is loading.', 503, 'req-1', 'engine_loading')} />);
    expect(screen.getByRole('alert').textContent).toContain('The model is loading.');
    expect(screen.getByRole('alert').textContent).toContain('req-1');
  });

  it('ConnectionDrawer edits and saves the connection (trailing slash trimmed)', () => {
    const onSave = vi.fn();
    render(<ConnectionDrawer connection={connection} onSave={onSave} onClose={() => {}} />);
    fireEvent.change(screen.getByLabelText('Base URL'), { target: { value: 'http://gpu-host:8080/' } });
    fireEvent.change(screen.getByLabelText('API key'), { target: { value: 'secret' } });
    fireEvent.click(screen.getByText('Save'));
    expect(onSave).toHaveBeenCalledWith({ baseUrl: 'http://gpu-host:8080', apiKey: 'secret', keyHeader: 'X-API-Key' });
  });

  it('LatencyBar labels each stage', () => {
    render(<LatencyBar timings={{ stt_ms: 120, llm_first_sentence_ms: 200, tts_first_audio_ms: 80, first_audio_ms: 410, total_ms: 900 }} />);
    expect(screen.getByLabelText(/stt 120 ms, llm → first sentence 200 ms, tts → first audio 80 ms, total 900 ms/)).toBeTruthy();
  });

  it('TextPanel streams a Responses API reply into the chat, with tokens/s, and continues from its id', async () => {
    const frame = (data: object) => `event: ${(data as { type: string }).type}\ndata: ${JSON.stringify(data)}\n\n`;
    const bodies: Record<string, unknown>[] = [];
    vi.stubGlobal('fetch', async (_url: string, init: RequestInit) => {
      bodies.push(JSON.parse(String(init.body)) as Record<string, unknown>);
      const id = `resp_${bodies.length}`;
      return sseResponse(
        [
          frame({ type: 'response.created', response: { id, status: 'in_progress' } }),
          frame({ type: 'response.output_text.delta', delta: 'Hello' }),
          frame({ type: 'response.output_text.delta', delta: ' world' }),
          frame({ type: 'response.completed', response: { id, status: 'completed', usage: { output_tokens: 2 } } }),
        ],
        5,
      );
    });
    render(<TextPanel connection={connection} />);
    await act(async () => {
      fireEvent.click(screen.getByText('Send'));
    });
    await waitFor(() => expect(screen.getByTestId('text-output').textContent).toBe('Hello world'));
    await waitFor(() => expect(screen.getByText(/2 tokens · [\d.–]+ tokens\/s · first token \d+ ms/)).toBeTruthy());
    expect(bodies[0]).toMatchObject({ input: 'Write a haiku about GPUs.', stream: true, temperature: 0.7, top_p: 0.95, max_output_tokens: 256 });
    expect(bodies[0]!.previous_response_id).toBeUndefined();
    fireEvent.change(screen.getByLabelText(/^Message/), { target: { value: 'And another?' } });
    await act(async () => {
      fireEvent.keyDown(screen.getByLabelText(/^Message/), { key: 'Enter', ctrlKey: true });
    });
    await waitFor(() => expect(bodies).toHaveLength(2));
    expect(bodies[1]).toMatchObject({ input: 'And another?', previous_response_id: 'resp_1' });
    // the second reply finishes before the test does (a stream still running after the test tore
    // the DOM down set state on a window that was gone: an unhandled error that failed the run)
    await waitFor(() => expect(screen.getAllByText(/2 tokens · /)).toHaveLength(2));
  });

  it('TextPanel stops the reply in flight when it is unmounted', async () => {
    let signal: AbortSignal | undefined;
    vi.stubGlobal('fetch', async (_url: string, init: RequestInit) => {
      signal = init.signal ?? undefined;
      return sseResponse([`event: response.created\ndata: ${JSON.stringify({ type: 'response.created', response: { id: 'r', status: 'in_progress' } })}\n\n`], 1000);
    });
    const view = render(<TextPanel connection={connection} />);
    await act(async () => {
      fireEvent.click(screen.getByText('Send'));
    });
    await waitFor(() => expect(signal).toBeDefined());
    view.unmount();
    expect(signal!.aborted).toBe(true);
  });

  it('TextPanel shows the envelope of a failed request readably', async () => {
    vi.stubGlobal('fetch', async () => new Response(JSON.stringify({ error: { message: 'The text-generation engine is not available.' }, request_id: 'r-2' }), { status: 503 }));
    render(<TextPanel connection={connection} />);
    await act(async () => {
      fireEvent.click(screen.getByText('Send'));
    });
    await waitFor(() => expect(screen.getByRole('alert').textContent).toContain('not available'));
  });
});
