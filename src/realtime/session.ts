/**
 * The OpenAI Realtime (GA) session for /v1/realtime: the `session.update` schema (strict: an
 * unknown or unsupported field is an error that names it), the defaults taken from our
 * configuration, and the effective session echoed in `session.created` / `session.updated`.
 * What maps onto what: `turn_detection` drives our WebRTC VAD (src/audio/vad.ts; `threshold`
 * picks its aggressiveness, `semantic_vad` is served by the same VAD), `transcription` is our
 * Whisper model that `transcription.model` names (an id or alias of GET /v1/models; OpenAI's names
 * pick the default), `model` picks the LLM the same way (OpenAI's realtime names pick the default),
 * `voice` is one of our voices, `instructions` replace DIALOGUE_SYSTEM_PROMPT.
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { Config } from '../config.ts';
import { wsLanguageSchema } from '../http/schemas.ts';

export const newId = (prefix: string) => `${prefix}_${randomBytes(12).toString('hex')}`;

export const audioFormat = z.discriminatedUnion('type', [
  z.object({ type: z.literal('audio/pcm'), rate: z.literal(24000).optional() }).strict(),
  z.object({ type: z.literal('audio/pcmu') }).strict(),
  z.object({ type: z.literal('audio/pcma') }).strict(),
]);
export type RealtimeAudioFormat = z.infer<typeof audioFormat>;

const turnDetection = z
  .object({
    type: z.enum(['server_vad', 'semantic_vad']),
    threshold: z.number().min(0).max(1).optional(),
    prefix_padding_ms: z.number().int().min(0).max(2000).optional(),
    silence_duration_ms: z.number().int().min(100).max(10_000).optional(),
    create_response: z.boolean().optional(),
    interrupt_response: z.boolean().optional(),
    idle_timeout_ms: z.null().optional(),
    eagerness: z.enum(['low', 'medium', 'high', 'auto']).optional(),
  })
  .strict();

const transcription = z
  .object({
    model: z.string().max(200).optional(),
    language: wsLanguageSchema.optional(),
    prompt: z.string().max(10_000).optional(),
  })
  .strict();

const maxOutputTokens = z.union([z.number().int().min(1).max(1_048_576), z.literal('inf')]);
const modalities = z.array(z.enum(['audio', 'text'])).min(1).max(2);

export const sessionUpdate = z
  .object({
    type: z.enum(['realtime', 'transcription']).optional(),
    model: z.string().max(200).optional(),
    instructions: z.string().max(100_000).optional(),
    output_modalities: modalities.optional(),
    audio: z
      .object({
        input: z
          .object({
            format: audioFormat.optional(),
            transcription: transcription.nullable().optional(),
            turn_detection: turnDetection.nullable().optional(),
            noise_reduction: z.null({ error: 'noise_reduction is not supported (null only)' }).optional(),
          })
          .strict()
          .optional(),
        output: z
          .object({ format: audioFormat.optional(), voice: z.string().min(1).max(200).optional(), speed: z.number().min(0.25).max(4).optional() })
          .strict()
          .optional(),
      })
      .strict()
      .optional(),
    max_output_tokens: maxOutputTokens.optional(),
    tools: z.array(z.unknown()).max(0, { error: 'tools are not supported (function calling is not implemented): send none' }).optional(),
    tool_choice: z.enum(['auto', 'none']).optional(),
    // accepted and ignored: tracing goes to OpenAI's dashboard, which a local service has not
    tracing: z.union([z.literal('auto'), z.null(), z.object({}).passthrough()]).optional(),
    include: z.array(z.string()).max(0).nullable().optional(),
  })
  .strict();
export type SessionUpdate = z.infer<typeof sessionUpdate>;

export const responseOptions = z
  .object({
    instructions: z.string().max(100_000).optional(),
    output_modalities: modalities.optional(),
    max_output_tokens: maxOutputTokens.optional(),
    conversation: z.enum(['auto', 'none']).optional(),
    metadata: z.record(z.string().max(64), z.string().max(512)).nullable().optional(),
    tools: z.array(z.unknown()).max(0, { error: 'tools are not supported: send none' }).optional(),
    tool_choice: z.enum(['auto', 'none']).optional(),
  })
  .strict();
export type ResponseOptions = z.infer<typeof responseOptions>;

export interface VadSettings {
  type: 'server_vad';
  threshold: number;
  prefix_padding_ms: number;
  silence_duration_ms: number;
  create_response: boolean;
  interrupt_response: boolean;
}

/** The session as it stands (what `session.updated` echoes). */
export interface RealtimeSession {
  id: string;
  type: 'realtime' | 'transcription';
  /** The LLM the client named (undefined: the default; echoed as DEFAULT_MODEL). */
  model: string | undefined;
  instructions: string;
  output_modalities: ('audio' | 'text')[];
  input_format: RealtimeAudioFormat;
  /** `model`: the speech-to-text model the client named (undefined: the default; echoed as TRANSCRIPTION_MODEL). */
  transcription: { model?: string | undefined; language?: string | undefined; prompt?: string | undefined } | null;
  turn_detection: VadSettings | null;
  output_format: RealtimeAudioFormat;
  voice: string | undefined;
  speed: number;
  max_output_tokens: number | 'inf';
}

export const DEFAULT_MODEL = 'gemma-3';
export const TRANSCRIPTION_MODEL = 'whisper';

export function defaultSession(config: Config, model?: string): RealtimeSession {
  return {
    id: newId('sess'),
    type: 'realtime',
    model,
    instructions: config.DIALOGUE_SYSTEM_PROMPT,
    output_modalities: ['audio'],
    input_format: { type: 'audio/pcm', rate: 24000 },
    transcription: {},
    turn_detection: { type: 'server_vad', threshold: (config.VAD_MODE + 0.5) / 4, prefix_padding_ms: config.VAD_PREROLL_MS, silence_duration_ms: config.VAD_SILENCE_MS, create_response: true, interrupt_response: true },
    output_format: { type: 'audio/pcm', rate: 24000 },
    voice: undefined,
    speed: 1,
    max_output_tokens: 'inf',
  };
}

/** Applies a validated `session.update` (fields left out keep their value). */
export function applyUpdate(session: RealtimeSession, update: SessionUpdate, config: Config): RealtimeSession {
  const next = { ...session };
  if (update.type) next.type = update.type;
  if (update.model) next.model = update.model;
  if (update.instructions !== undefined) next.instructions = update.instructions;
  if (update.output_modalities) next.output_modalities = update.output_modalities.includes('audio') ? ['audio'] : ['text'];
  const input = update.audio?.input;
  if (input?.format) next.input_format = normalizeFormat(input.format);
  if (input?.transcription !== undefined) next.transcription = input.transcription === null ? null : { ...input.transcription };
  if (input?.turn_detection !== undefined) {
    const t = input.turn_detection;
    const base = next.turn_detection ?? defaultSession(config).turn_detection!;
    next.turn_detection =
      t === null
        ? null
        : {
            type: 'server_vad',
            threshold: t.threshold ?? base.threshold,
            prefix_padding_ms: t.prefix_padding_ms ?? base.prefix_padding_ms,
            silence_duration_ms: t.silence_duration_ms ?? base.silence_duration_ms,
            create_response: t.create_response ?? base.create_response,
            interrupt_response: t.interrupt_response ?? base.interrupt_response,
          };
  }
  const output = update.audio?.output;
  if (output?.format) next.output_format = normalizeFormat(output.format);
  if (output?.voice) next.voice = output.voice;
  if (output?.speed !== undefined) next.speed = output.speed;
  if (update.max_output_tokens !== undefined) next.max_output_tokens = update.max_output_tokens;
  return next;
}

function normalizeFormat(format: RealtimeAudioFormat): RealtimeAudioFormat {
  return format.type === 'audio/pcm' ? { type: 'audio/pcm', rate: 24000 } : format;
}

/** Samples per second of a format on the wire. */
export function formatRate(format: RealtimeAudioFormat): number {
  return format.type === 'audio/pcm' ? 24000 : 8000;
}

/** The WebRTC VAD's aggressiveness (0-3) for an OpenAI `threshold` (0-1, higher needs louder speech). */
export function vadMode(threshold: number): number {
  return Math.min(3, Math.floor(threshold * 4));
}

/** The session object of the OpenAI protocol. */
export function sessionView(s: RealtimeSession): Record<string, unknown> {
  const input = {
    format: s.input_format,
    transcription: s.transcription ? { model: s.transcription.model ?? TRANSCRIPTION_MODEL, language: s.transcription.language ?? null, prompt: s.transcription.prompt ?? '' } : null,
    noise_reduction: null,
    turn_detection: s.turn_detection ? { ...s.turn_detection, idle_timeout_ms: null } : null,
  };
  if (s.type === 'transcription') return { type: 'transcription', object: 'realtime.transcription_session', id: s.id, expires_at: 0, include: null, audio: { input } };
  return {
    type: 'realtime',
    object: 'realtime.session',
    id: s.id,
    model: s.model ?? DEFAULT_MODEL,
    output_modalities: s.output_modalities,
    instructions: s.instructions,
    tools: [],
    tool_choice: 'auto',
    max_output_tokens: s.max_output_tokens,
    tracing: null,
    prompt: null,
    expires_at: 0,
    include: null,
    audio: { input, output: { format: s.output_format, voice: s.voice ?? 'default', speed: s.speed } },
  };
}
