import { useEffect, useRef, useState, type KeyboardEvent } from 'react';
import { readSse, request } from '../api/client.ts';
import { notReadyReason, type ReadinessState } from '../api/readiness.ts';
import type { Connection } from '../api/settings.ts';
import { Unavailable } from '../components/Unavailable.tsx';
import { ErrorBox } from '../components/ErrorBox.tsx';

interface Turn {
  role: 'user' | 'assistant';
  text: string;
  /** The stored response (assistant turns): what the next turn names as `previous_response_id`. */
  responseId?: string;
  /** tokens/s, first-token time, why it ended. */
  meta?: string;
  stopped?: boolean;
}

/** One streamed event of POST /v1/responses (only the fields read here). */
interface ResponseEvent {
  type: string;
  delta?: string;
  response?: { id: string; status: string; usage?: { output_tokens: number }; error?: { message: string }; incomplete_details?: { reason: string } | null };
  error?: { message: string };
  message?: string;
}

/**
 * Text as a chat through POST /v1/responses: the history lives on the server (each turn sends only
 * the new message and the previous response's id), the system prompt goes as `instructions` with
 * every turn (the Responses API does not carry it over). The sampling controls are those the
 * Responses API has — temperature, top_p, max_output_tokens; it has no penalties or stop sequences.
 */
export function TextPanel({ connection, readiness }: { connection: Connection; readiness?: ReadinessState }) {
  const unavailable = readiness && notReadyReason(readiness, 'llm');
  const [system, setSystem] = useState('You are a helpful assistant. Answer briefly.');
  const [message, setMessage] = useState('Write a haiku about GPUs.');
  const [turns, setTurns] = useState<Turn[]>([]);
  const [maxTokens, setMaxTokens] = useState(256);
  const [temperature, setTemperature] = useState(0.7);
  const [topP, setTopP] = useState(0.95);
  const [error, setError] = useState<unknown>(null);
  const [running, setRunning] = useState(false);
  const [announcement, setAnnouncement] = useState('');
  const [copied, setCopied] = useState<number | null>(null);
  const controller = useRef<AbortController | null>(null);
  // leaving the tab stops the reply being generated (the server stops the generation with it)
  useEffect(() => () => controller.current?.abort(), []);

  /** Streams a reply to `text`, after the turns in `history` (the last assistant turn there is continued). */
  async function run(history: Turn[], text: string) {
    const previous = [...history].reverse().find((t) => t.role === 'assistant' && t.responseId)?.responseId;
    const reply: Turn = { role: 'assistant', text: '' };
    setTurns([...history, { role: 'user', text }, reply]);
    const update = (change: Partial<Turn>) => setTurns((all) => [...all.slice(0, -1), { ...all[all.length - 1]!, ...change }]);
    setError(null);
    setAnnouncement('');
    setRunning(true);
    controller.current = new AbortController();
    const started = performance.now();
    let first = 0;
    let output = '';
    try {
      const json = {
        input: text,
        instructions: system.trim() || undefined,
        previous_response_id: previous,
        max_output_tokens: maxTokens,
        temperature,
        top_p: topP,
        stream: true,
      };
      const res = await request(connection, '/v1/responses', { method: 'POST', json, signal: controller.current.signal });
      for await (const event of readSse(res)) {
        const data = JSON.parse(event.data) as ResponseEvent;
        if (data.type === 'response.created' && data.response) update({ responseId: data.response.id });
        else if (data.type === 'response.output_text.delta') {
          first ||= performance.now() - started;
          output += data.delta ?? '';
          update({ text: output });
        } else if (data.type === 'response.completed' || data.type === 'response.incomplete') {
          const seconds = (performance.now() - started - first) / 1000;
          const tokens = data.response?.usage?.output_tokens ?? 0;
          const rate = seconds > 0 && tokens > 1 ? `${((tokens - 1) / seconds).toFixed(1)} tokens/s` : '– tokens/s';
          const end = data.type === 'response.incomplete' ? ' · cut at max tokens' : '';
          update({ meta: `${tokens} tokens · ${rate} · first token ${first.toFixed(0)} ms${end}` });
          setAnnouncement(`Reply: ${output}`);
        } else if (data.type === 'response.failed' || data.type === 'error') {
          throw new Error(data.response?.error?.message ?? data.error?.message ?? data.message ?? 'the response failed');
        }
      }
    } catch (e) {
      if ((e as Error).name === 'AbortError') update({ stopped: true, meta: 'stopped' });
      else {
        setError(e);
        // a reply that never started is dropped, with its message back in the box to try again
        if (!output) {
          setTurns(history);
          setMessage(text);
        }
      }
    } finally {
      setRunning(false);
    }
  }

  function send() {
    const text = message.trim();
    if (!text || running || unavailable) return;
    setMessage('');
    void run(turns, text);
  }

  /** The last reply again: its user turn resent after the reply before it. */
  function regenerate() {
    const lastUser = turns.map((t) => t.role).lastIndexOf('user');
    if (lastUser < 0 || running) return;
    void run(turns.slice(0, lastUser), turns[lastUser]!.text);
  }

  async function copy(i: number) {
    try {
      await navigator.clipboard.writeText(turns[i]!.text);
      setCopied(i);
      setTimeout(() => setCopied((c) => (c === i ? null : c)), 2000);
    } catch (e) {
      setError(new Error(`Could not copy: ${(e as Error).message}`));
    }
  }

  const onKey = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      send();
    }
  };
  const lastAssistant = turns.map((t) => t.role).lastIndexOf('assistant');

  return (
    <section aria-labelledby="text-title">
      <h2 id="text-title">Text</h2>
      <label>
        System prompt
        <textarea value={system} onChange={(e) => setSystem(e.target.value)} rows={2} disabled={running} />
      </label>
      <details className="sampling">
        <summary>Sampling</summary>
        <div className="row">
          <label>
            Max tokens
            <input type="number" min={1} value={maxTokens} onChange={(e) => setMaxTokens(Number(e.target.value))} />
          </label>
          <label>
            Temperature
            <input type="number" min={0} max={2} step={0.1} value={temperature} onChange={(e) => setTemperature(Number(e.target.value))} />
          </label>
          <label>
            Top p
            <input type="number" min={0} max={1} step={0.05} value={topP} onChange={(e) => setTopP(Number(e.target.value))} />
          </label>
        </div>
        <p className="meta">The Responses API has no penalties or stop sequences (as OpenAI's); /v1/chat/completions takes them.</p>
      </details>
      <ol className="chat" data-testid="text-chat" aria-label="Conversation">
        {turns.map((t, i) => (
          <li key={i} className={`bubble ${t.role}${t.stopped ? ' cancelled' : ''}`} data-response-id={t.responseId}>
            <span className="who">{t.role === 'user' ? 'You' : 'Gemma'}</span>
            <span className="bubble-text" data-testid={t.role === 'assistant' && i === turns.length - 1 ? 'text-output' : undefined}>
              {t.text}
            </span>
            {t.role === 'assistant' && (
              <span className="bubble-actions">
                {t.meta && <span className="meta">{t.meta}</span>}
                {t.text && (
                  <button type="button" onClick={() => void copy(i)} disabled={running && i === turns.length - 1}>
                    {copied === i ? 'Copied' : 'Copy'}
                  </button>
                )}
                {i === lastAssistant && !running && (
                  <button type="button" onClick={regenerate} disabled={!!unavailable}>
                    Regenerate
                  </button>
                )}
              </span>
            )}
          </li>
        ))}
      </ol>
      {/* the reply grows token by token, which a live region would read out word by word; the
          finished reply is announced once instead */}
      <p className="visually-hidden" aria-live="polite" data-testid="text-announcement">
        {announcement}
      </p>
      <ErrorBox error={error} />
      <Unavailable id="text-unavailable" reason={unavailable} />
      <label>
        <span>
          Message <span className="meta">(Ctrl+Enter or ⌘+Enter sends)</span>
        </span>
        <textarea value={message} onChange={(e) => setMessage(e.target.value)} onKeyDown={onKey} rows={3} aria-keyshortcuts="Control+Enter Meta+Enter" />
      </label>
      <div className="row">
        <button onClick={send} disabled={running || !message.trim() || !!unavailable} aria-describedby={unavailable ? 'text-unavailable' : undefined}>
          Send
        </button>
        <button onClick={() => controller.current?.abort()} disabled={!running}>
          Stop
        </button>
        <button
          onClick={() => {
            setTurns([]);
            setError(null);
            setAnnouncement('');
          }}
          disabled={running || turns.length === 0}
        >
          New chat
        </button>
      </div>
    </section>
  );
}
