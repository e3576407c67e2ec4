/**
 * The conversation of one /v1/realtime connection: its items in order (user and assistant
 * messages; system messages add to the instructions), as the OpenAI protocol shows them, and as
 * the dialogue pipeline reads them (Turn history). Items live in the connection only — another
 * connection, whoever's key it holds, never sees them (an unknown id is `item_not_found`).
 */
import type { Turn } from '../sessions/types.ts';

export type Content =
  | { type: 'input_text'; text: string }
  | { type: 'input_audio'; transcript: string | null }
  | { type: 'output_text'; text: string }
  | { type: 'output_audio'; transcript: string };

export interface Item {
  id: string;
  role: 'user' | 'assistant' | 'system';
  status: 'completed' | 'incomplete' | 'in_progress';
  content: Content[];
  /** A user's spoken turn not yet transcribed (16 kHz): the next response transcribes it. */
  audio?: Float32Array;
  /** Milliseconds of reply audio sent (assistant audio items), for `truncate`. */
  audioMs?: number;
}

/** Items kept per connection; older ones are dropped (the model sees a window of them anyway). */
const MAX_ITEMS = 1000;

/** What an item holds in memory, about: its words (UTF-16, two bytes a character) and its audio. */
function sizeOf(item: Item): number {
  const chars = item.content.reduce((n, c) => n + ('text' in c ? c.text.length : (c.transcript?.length ?? 0)), 0);
  return chars * 2 + (item.audio?.byteLength ?? 0);
}

export function itemView(item: Item): Record<string, unknown> {
  return { id: item.id, type: 'message', object: 'realtime.item', status: item.status, role: item.role, content: item.content.map((c) => ({ ...c })) };
}

/** The words of an item (text, or the transcript of audio). */
export function itemText(item: Item): string {
  return item.content
    .map((c) => (c.type === 'input_text' || c.type === 'output_text' ? c.text : (c.transcript ?? '')))
    .join(' ')
    .trim();
}

export class Conversation {
  private readonly items: Item[] = [];

  /**
   * @param maxBytes what its items may hold in all (REALTIME_MAX_CONVERSATION_MB): each message is
   *   bounded, their number too, and without this one connection could still hold gigabytes
   * @param dropped told of each item dropped to stay within the bounds (the oldest first)
   */
  constructor(
    private readonly maxBytes = Infinity,
    private readonly dropped: (item: Item) => void = () => undefined,
  ) {}

  get(id: string): Item | undefined {
    return this.items.find((i) => i.id === id);
  }

  last(): Item | undefined {
    return this.items.at(-1);
  }

  /** Inserts after `previousId` (undefined: at the end; null: at the start); returns the id before it. */
  insert(item: Item, previousId?: string | null): string | null {
    let at = this.items.length;
    if (previousId === null) at = 0;
    else if (previousId !== undefined) at = this.items.findIndex((i) => i.id === previousId) + 1;
    this.items.splice(at, 0, item);
    this.bound(item);
    return this.items[this.items.indexOf(item) - 1]?.id ?? null;
  }

  /** Drops the oldest items (never `kept`, the one just added) until the count and the bytes are within bounds. */
  private bound(kept: Item): void {
    let bytes = this.items.reduce((n, i) => n + sizeOf(i), 0);
    while (this.items.length > MAX_ITEMS || (bytes > this.maxBytes && this.items.length > 1)) {
      const oldest = this.items[0] === kept ? 1 : 0;
      const [gone] = this.items.splice(oldest, 1);
      bytes -= sizeOf(gone!);
      this.dropped(gone!);
    }
  }

  has(id: string): boolean {
    return this.items.some((i) => i.id === id);
  }

  delete(id: string): boolean {
    const at = this.items.findIndex((i) => i.id === id);
    if (at < 0) return false;
    this.items.splice(at, 1);
    return true;
  }

  /** The latest user item: what a response answers. */
  lastUser(): Item | undefined {
    return this.items.findLast((i) => i.role === 'user');
  }

  /** System items' words, added to the instructions. */
  systemText(): string {
    return this.items.filter((i) => i.role === 'system').map(itemText).filter(Boolean).join('\n');
  }

  /** The history before `item` as pipeline turns (messages without words are left out). */
  historyBefore(item: Item): Turn[] {
    const at = new Date().toISOString();
    const turns: Turn[] = [];
    for (const i of this.items) {
      if (i === item) break;
      if (i.role === 'system') continue;
      const content = itemText(i);
      if (content) turns.push({ role: i.role, content, at, ...(i.status === 'incomplete' ? { interrupted: true } : {}) });
    }
    return turns;
  }
}
