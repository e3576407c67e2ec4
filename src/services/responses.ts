/**
 * Stored /v1/responses answers, kept in the session store (process memory, or Redis so that every
 * replica sees them) as one record per response for SESSION_TTL_SECONDS: the response object, its
 * input items, and the conversation a `previous_response_id` continues — already cut to the
 * dialogue's history budget, so a long chain never grows its record.
 */
import type { Config } from '../config.ts';
import type { ChatMessage } from '../engines/llm/types.ts';
import { ApiError } from '../errors.ts';
import type { ResponseObject, StoredItem } from '../http/openai/responses-schema.ts';
import type { Owner } from '../tenancy.ts';
import { historyWindow } from '../sessions/index.ts';
import type { SessionStore } from '../sessions/types.ts';

export interface StoredResponse {
  /** Digest of the API key that created it (null: keys were off). */
  owner: Owner;
  response: ResponseObject;
  items: StoredItem[];
  /** The conversation up to and including this response's output (instructions excluded, as OpenAI). */
  history: ChatMessage[];
}

const RESPONSE_ID = /^resp_[A-Za-z0-9]{1,120}$/;
const recordKey = (id: string) => `response:${id}`;

export function notFound(id: string, param: string): ApiError {
  return new ApiError(404, 'not_found_error', `No response with id "${id.slice(0, 128)}" (it may have expired, been deleted, or belong to another API key).`, { param, code: 'response_not_found' });
}

export class ResponseStore {
  constructor(
    private readonly sessions: SessionStore,
    private readonly config: Pick<Config, 'SESSION_HISTORY_TURNS' | 'SESSION_HISTORY_TOKENS'>,
  ) {}

  /** The stored response if it exists and belongs to `owner`; another owner's is as unknown as a missing one. */
  async get(id: string, owner: Owner, param = 'id'): Promise<StoredResponse> {
    const raw = RESPONSE_ID.test(id) ? await this.sessions.getRecord(recordKey(id)) : null;
    const stored = raw === null ? undefined : (JSON.parse(raw) as StoredResponse);
    if (!stored || stored.owner !== owner) throw notFound(id, param);
    return stored;
  }

  /**
   * Before generating an answer that is to be stored: a 503 now, while the store is known to be
   * down (Redis unreachable, no fallback), rather than after the generation has used a slot.
   */
  assertWritable(): void {
    const problem = this.sessions.problem();
    if (problem) {
      throw new ApiError(503, 'server_error', `The session store is unavailable (${problem}), so the response could not be stored. Retry shortly, or send "store": false.`, {
        code: 'session_store_unavailable',
        headers: { 'Retry-After': '1' },
      });
    }
  }

  async put(stored: StoredResponse): Promise<void> {
    await this.sessions.putRecord(recordKey(stored.response.id), JSON.stringify(stored));
  }

  async delete(id: string, owner: Owner): Promise<void> {
    await this.get(id, owner);
    await this.sessions.deleteRecord(recordKey(id));
  }

  /**
   * The part of a stored conversation sent before new input: its system/developer messages (each
   * once, newest first within the budget), then the latest turns within SESSION_HISTORY_TURNS and
   * SESSION_HISTORY_TOKENS, starting at a user turn.
   */
  context(history: ChatMessage[]): ChatMessage[] {
    const budget = this.config.SESSION_HISTORY_TOKENS;
    const system: ChatMessage[] = [];
    let spent = 0;
    for (const m of [...history].reverse()) {
      if (m.role !== 'system' || system.some((s) => s.content === m.content)) continue;
      const cost = Math.ceil(m.content.length / 4);
      if (spent + cost > budget) break;
      spent += cost;
      system.unshift(m);
    }
    const turns = historyWindow(
      history.filter((m) => m.role !== 'system'),
      this.config.SESSION_HISTORY_TURNS,
      Math.max(0, budget - spent),
    );
    return [...system, ...turns];
  }
}

/** A page of input items, as OpenAI lists them (`after`/`before` are item ids; `desc` is newest first). */
export function pageOfItems(items: StoredItem[], query: { limit: number; order: 'asc' | 'desc'; after?: string; before?: string }) {
  let list = query.order === 'desc' ? [...items].reverse() : items;
  for (const [param, id] of [
    ['after', query.after],
    ['before', query.before],
  ] as const) {
    if (id === undefined) continue;
    const at = list.findIndex((item) => item.id === id);
    if (at < 0) throw ApiError.badRequest(`No input item with id "${id.slice(0, 128)}" in this response.`, param);
    list = param === 'after' ? list.slice(at + 1) : list.slice(0, at);
  }
  // with only `before`, the page is the one just before that item (the previous page)
  const data = query.before !== undefined && query.after === undefined ? list.slice(-query.limit) : list.slice(0, query.limit);
  return { object: 'list' as const, data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: list.length > data.length };
}

/** Cuts tried one by one before the steps between them start doubling (a long overflow is cut coarser). */
const FINE_CUTS = 8;

/**
 * `truncation: "auto"`: the prompt with fewer of its oldest turns, in the order to try them until
 * one fits the context window. System messages (instructions included) stay, as do the last user
 * message and what follows it; each cut starts the conversation at a user turn. The first
 * FINE_CUTS cuts drop one turn more each (the usual case: a conversation just grew past the
 * window, so the fit is exact); after that the step doubles, so that a hostile input of a thousand
 * turns costs a few dozen prompt countings, not a thousand (it may then drop up to twice the turns
 * it had to). The last candidate keeps no turn before the last user message.
 */
export function* truncations(messages: ChatMessage[]): Generator<ChatMessage[]> {
  let lastUser = -1;
  messages.forEach((m, i) => {
    if (m.role === 'user') lastUser = i;
  });
  const turns = messages.map((m, i) => (i < lastUser && m.role !== 'system' ? i : -1)).filter((i) => i >= 0);
  if (turns.length === 0) return;
  // a cut drops the first `n` turns; it must leave a user turn first (or drop them all)
  const cuts = turns.map((index, n) => (n > 0 && messages[index]!.role === 'user' ? n : -1)).filter((n) => n > 0);
  cuts.push(turns.length);
  const order: number[] = [];
  for (let i = 0, step = 1; i < cuts.length; i += step) {
    order.push(cuts[i]!);
    if (order.length >= FINE_CUTS) step *= 2;
  }
  if (order.at(-1) !== turns.length) order.push(turns.length);
  for (const n of order) {
    const dropped = new Set(turns.slice(0, n));
    yield messages.filter((_, i) => !dropped.has(i));
  }
}
