import { useRef, useState } from 'react';
import { readSse, request } from '../api/client.ts';
import { notReadyReason, type ReadinessState } from '../api/readiness.ts';
import type { Connection } from '../api/settings.ts';
import { Unavailable } from '../components/Unavailable.tsx';
import { ErrorBox } from '../components/ErrorBox.tsx';

/** Text generation, streamed token by token, with a stop button. */
export function TextPanel({ connection, readiness }: { connection: Connection; readiness?: ReadinessState }) {
  const unavailable = readiness && notReadyReason(readiness, 'llm');
  const [prompt, setPrompt] = useState('Write a haiku about GPUs.');
  const [maxTokens, setMaxTokens] = useState(128);
  const [temperature, setTemperature] = useState(0.7);
  const [output, setOutput] = useState('');
  const [meta, setMeta] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [running, setRunning] = useState(false);
  const controller = useRef<AbortController | null>(null);

  async function generate() {
    setOutput('');
    setMeta('');
    setError(null);
    setRunning(true);
    controller.current = new AbortController();
    const started = performance.now();
    try {
      const res = await request(connection, '/v1/generate', { method: 'POST', json: { prompt, max_tokens: maxTokens, temperature, stream: true }, signal: controller.current.signal });
      let first = 0;
      for await (const event of readSse(res)) {
        const data = JSON.parse(event.data) as { text?: string; finish_reason?: string; usage?: { completion_tokens: number }; model?: string; error?: { message: string } };
        if (event.event === 'delta') {
          first ||= performance.now() - started;
          setOutput((o) => o + (data.text ?? ''));
        } else if (event.event === 'done') setMeta(`${data.model} · ${data.usage?.completion_tokens} tokens · first token ${first.toFixed(0)} ms · ${data.finish_reason}`);
        else if (event.event === 'error') setError(new Error(data.error?.message ?? 'stream failed'));
      }
    } catch (e) {
      if ((e as Error).name !== 'AbortError') setError(e);
      else setMeta('stopped');
    } finally {
      setRunning(false);
    }
  }

  return (
    <section aria-labelledby="text-title">
      <h2 id="text-title">Text</h2>
      <label>
        Prompt
        <textarea value={prompt} onChange={(e) => setPrompt(e.target.value)} rows={4} />
      </label>
      <div className="row">
        <label>
          Max tokens
          <input type="number" min={1} value={maxTokens} onChange={(e) => setMaxTokens(Number(e.target.value))} />
        </label>
        <label>
          Temperature
          <input type="number" min={0} max={2} step={0.1} value={temperature} onChange={(e) => setTemperature(Number(e.target.value))} />
        </label>
      </div>
      <div className="row">
        <button onClick={() => void generate()} disabled={running || !prompt.trim() || !!unavailable} aria-describedby={unavailable ? 'text-unavailable' : undefined}>
          Generate
        </button>
        <button onClick={() => controller.current?.abort()} disabled={!running}>
          Stop
        </button>
      </div>
      <Unavailable id="text-unavailable" reason={unavailable} />
      <ErrorBox error={error} />
      {/* the output grows token by token, which a live region would read out word by word; the
          finished reply is announced once instead */}
      <pre className="output" data-testid="text-output">
        {output}
      </pre>
      <p className="visually-hidden" aria-live="polite" data-testid="text-announcement">
        {running ? '' : output && `Reply: ${output}`}
      </p>
      {meta && <p className="meta">{meta}</p>}
    </section>
  );
}
