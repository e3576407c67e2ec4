/**
 * Dialogue prompts by modality: a spoken reply is short and has no markdown; a text reply may
 * differ. DIALOGUE_SYSTEM_PROMPT + DIALOGUE_VOICE_PROMPT / DIALOGUE_TEXT_PROMPT, or a JSON file
 * (DIALOGUE_PROMPTS_FILE: {"system","voice","text"}) read once at start-up. The conversation itself
 * goes through the model's chat template (the engines render messages, not strings).
 */
import fs from 'node:fs';
import { z } from 'zod';
import type { Config } from '../config.ts';
import type { ChatMessage } from '../engines/llm/types.ts';
import type { Turn } from '../sessions/types.ts';

export interface DialoguePrompts {
  system: string;
  voice: string;
  text: string;
}

const fileSchema = z.object({ system: z.string().optional(), voice: z.string().optional(), text: z.string().optional() }).strict();

export function loadPrompts(config: Config): DialoguePrompts {
  const prompts = { system: config.DIALOGUE_SYSTEM_PROMPT, voice: config.DIALOGUE_VOICE_PROMPT, text: config.DIALOGUE_TEXT_PROMPT };
  if (!config.DIALOGUE_PROMPTS_FILE) return prompts;
  const parsed = fileSchema.safeParse(JSON.parse(fs.readFileSync(config.DIALOGUE_PROMPTS_FILE, 'utf8')));
  if (!parsed.success) throw new Error(`DIALOGUE_PROMPTS_FILE (${config.DIALOGUE_PROMPTS_FILE}): ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return { ...prompts, ...Object.fromEntries(Object.entries(parsed.data).filter(([, v]) => v !== undefined)) };
}

/** The messages for one turn: the system prompt for the modality, the history window, the user's words. */
export function turnMessages(prompts: DialoguePrompts, spoken: boolean, history: Turn[], userText: string): ChatMessage[] {
  return [
    { role: 'system', content: `${prompts.system}\n\n${spoken ? prompts.voice : prompts.text}` },
    ...history.map((t) => ({ role: t.role, content: t.content })),
    { role: 'user', content: userText },
  ];
}
