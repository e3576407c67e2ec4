/**
 * Splits text that arrives in pieces (LLM tokens, WebSocket messages) into sentences as soon as
 * each one is complete, so speech can start on the first sentence while the rest is still being
 * written. Sentence boundaries come from ICU (`Intl.Segmenter`, every language Node knows); a
 * boundary counts once text follows it (a trailing "." may still become "3.5"). Very long
 * sentences are cut at the last clause or word break before `maxChars` so speech never waits
 * for a run-on sentence.
 */
const segmenter = new Intl.Segmenter(undefined, { granularity: 'sentence' });

export class SentenceSplitter {
  private buffer = '';

  constructor(private readonly maxChars = 250) {}

  /** Adds text; returns the sentences completed by it (trimmed, non-empty). */
  push(text: string): string[] {
    this.buffer += text;
    const out: string[] = [];
    const segments = [...segmenter.segment(this.buffer)].map((s) => s.segment);
    // every segment but the last is complete; the last is complete only if more text follows it
    let consumed = 0;
    for (let i = 0; i < segments.length - 1; i++) {
      out.push(segments[i]!);
      consumed += segments[i]!.length;
    }
    this.buffer = this.buffer.slice(consumed);
    while (this.buffer.length > this.maxChars) out.push(this.cut());
    return out.map((s) => s.trim()).filter((s) => s.length > 0);
  }

  /** Returns whatever is left (the end of the text) and empties the buffer. */
  flush(): string[] {
    const rest = this.buffer.trim();
    this.buffer = '';
    return rest ? [rest] : [];
  }

  /** Text held back, waiting for its sentence to end. */
  get pending(): string {
    return this.buffer;
  }

  private cut(): string {
    const window = this.buffer.slice(0, this.maxChars);
    const clause = Math.max(window.lastIndexOf(', '), window.lastIndexOf('; '), window.lastIndexOf(': '));
    const space = window.lastIndexOf(' ');
    const at = clause > this.maxChars / 2 ? clause + 1 : space > 0 ? space : this.maxChars;
    const head = this.buffer.slice(0, at);
    this.buffer = this.buffer.slice(at);
    return head;
  }
}

/** Splits a whole text into sentences. */
export function splitSentences(text: string, maxChars?: number): string[] {
  const splitter = new SentenceSplitter(maxChars);
  return [...splitter.push(text), ...splitter.flush()];
}
