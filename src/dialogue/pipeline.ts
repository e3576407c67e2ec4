/**
 * One voice-dialogue turn: (audio → STT) → Gemma → (TTS), streamed at sentence level. As the LLM
 * streams, each complete sentence goes to TTS while the LLM continues, so the first audio leaves
 * before the reply is finished; audio stays in order (one encoder per turn). Shared by
 * /v1/dialogue (JSON and SSE) and /ws/dialogue.
 *
 * `start` does what can fail with a clean HTTP status before the first byte: session id, history
 * (503 when Redis is down), engine readiness, and speech-to-text. Then `events` yields
 * `transcript`, `text.delta`/`audio.delta` interleaved as produced, and one `done` with metadata.
 * TTS failures degrade the turn to text (`degraded: [{stage:"tts"}]`); no speech ends the turn
 * without calling the LLM. The AbortSignal stops every stage; an interrupted turn is stored with
 * what was delivered, marked `interrupted`.
 */
import { randomUUID } from 'node:crypto';
import type { Config } from '../config.ts';
import type { DecodedAudio } from '../audio/decode.ts';
import type { AudioFormat } from '../audio/formats.ts';
import { finalizeWav } from '../audio/wav.ts';
import type { Transcript } from '../engines/stt/types.ts';
import { ApiError } from '../errors.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { GenerationService } from '../services/generation.ts';
import type { SpokenSentences, SynthesisService } from '../services/synthesis.ts';
import type { TranscriptionService } from '../services/transcription.ts';
import { historyWindow } from '../sessions/index.ts';
import { SESSION_ID_PATTERN, type SessionRef, type SessionStore, type Turn } from '../sessions/types.ts';
import { SentenceSplitter } from '../text/sentences.ts';
import { AsyncQueue } from '../util/async-queue.ts';
import { turnMessages, type DialoguePrompts } from './prompts.ts';

export interface DialogueTurnInput {
  sessionId?: string;
  /** Whose session (src/tenancy.ts): the tenant of the request's API key; undefined with keys off. */
  owner?: string;
  text?: string;
  audio?: DecodedAudio;
  language?: string;
  /** What the reply should contain. */
  modalities: { text: boolean; audio: boolean };
  voice?: string;
  /** Speaking rate (1 = the voice's own). */
  speed?: number;
  format: AudioFormat;
  sampleRate?: number;
  maxTokens?: number;
  temperature?: number;
  /** The text model that answers (id or alias of GET /v1/models; undefined: the default). */
  model?: string;
  /** The speech-to-text model that transcribes an audio turn (undefined: the default). */
  sttModel?: string;
  /** When the request arrived (performance.now()), for first_audio_ms and total_ms. */
  receivedAt?: number;
  /**
   * The conversation so far, kept by the caller (the /v1/realtime socket keeps its items itself):
   * when given, the session store is neither read nor written for this turn.
   */
  history?: Turn[];
  /** Replaces DIALOGUE_SYSTEM_PROMPT for this turn (the realtime session's `instructions`). */
  instructions?: string;
}

export interface Degradation {
  stage: 'tts' | 'session';
  reason: string;
}

export interface TurnTimings {
  stt_ms: number | null;
  llm_first_token_ms: number | null;
  llm_total_ms: number | null;
  /** From the LLM call to its first complete sentence (what TTS waits for). */
  llm_first_sentence_ms: number | null;
  tts_first_audio_ms: number | null;
  tts_total_ms: number | null;
  first_audio_ms: number | null;
  total_ms: number;
}

export interface DialogueResult {
  session_id: string;
  transcript: Transcript | null;
  reply_text: string;
  /** The whole reply audio (for JSON answers; streams send `audio.delta` instead). */
  audio: { bytes: Buffer; format: AudioFormat; sample_rate: number; duration_seconds: number } | null;
  no_speech: boolean;
  degraded: Degradation[];
  engines: { stt: string | null; llm: string; tts: string | null };
  usage: { prompt_tokens: number; completion_tokens: number };
  timings: TurnTimings;
}

export type DialogueEvent =
  | { type: 'transcript'; transcript: Transcript }
  | { type: 'text.delta'; text: string }
  | { type: 'audio.delta'; audio: Buffer; format: AudioFormat; sample_rate: number }
  | { type: 'done'; result: DialogueResult };

export interface DialogueTurn {
  sessionId: string;
  events: AsyncIterable<DialogueEvent>;
}

const ms = (from: number, to = performance.now()) => Math.round((to - from) * 10) / 10;

export class DialogueService {
  constructor(
    private readonly config: Config,
    private readonly deps: {
      transcription: TranscriptionService;
      generation: GenerationService;
      synthesis: SynthesisService;
      sessions: SessionStore;
      metrics: Metrics;
      prompts: DialoguePrompts;
    },
  ) {}

  /** Throws the 503 envelope when the model is not ready (speech-to-text is checked per audio turn). */
  assertAvailable(model?: string): void {
    this.deps.generation.assertAvailable(model);
  }

  /** Throws 404 `model_not_found` when a name picks no model (text, speech-to-text); loads nothing, checks no readiness. */
  checkModels(model?: string, sttModel?: string): void {
    this.deps.generation.modelId(model);
    this.deps.transcription.modelId(sttModel);
  }

  /** The client's session id (checked), or a new one. */
  sessionIdFor(requested: string | undefined): string {
    if (requested === undefined) return randomUUID();
    if (!SESSION_ID_PATTERN.test(requested)) throw ApiError.badRequest('session_id must be 1-128 characters of letters, digits, "_", "-", ".", ":", starting with a letter, digit, "_" or "-".', 'session_id', 'invalid_session_id');
    return requested;
  }

  async start(input: DialogueTurnInput, signal: AbortSignal): Promise<DialogueTurn> {
    const t0 = input.receivedAt ?? performance.now();
    const sessionId = this.sessionIdFor(input.sessionId);
    if (!input.audio && !input.text?.trim()) throw ApiError.badRequest('Send the user turn as `text` or as audio (`file` / `audio_base64`).', 'text', 'empty_turn');
    if (!input.modalities.text && !input.modalities.audio) throw ApiError.badRequest('response_modalities must include "text" or "audio".', 'response_modalities', 'invalid_value');
    if (input.audio) this.deps.transcription.assertAvailable(input.sttModel);
    this.deps.generation.assertAvailable(input.model);
    const history = input.history ?? (await this.deps.sessions.history({ owner: input.owner, id: sessionId }));

    let transcript: Transcript | null = null;
    let sttEngine: string | null = null;
    let sttMs: number | null = null;
    if (input.audio) {
      const started = performance.now();
      const result = await this.deps.transcription.transcribe({ audio: input.audio.samples, language: input.language, task: 'transcribe', wordTimestamps: false }, signal, undefined, input.sttModel);
      transcript = { ...result.transcript, duration: input.audio.duration };
      sttEngine = result.engine;
      sttMs = ms(started);
    }
    const userText = transcript ? transcript.text.trim() : input.text!.trim();
    return { sessionId, events: this.run(input, signal, { t0, sessionId, history, transcript, sttEngine, sttMs, userText }) };
  }

  private async *run(
    input: DialogueTurnInput,
    signal: AbortSignal,
    turn: { t0: number; sessionId: string; history: Turn[]; transcript: Transcript | null; sttEngine: string | null; sttMs: number | null; userText: string },
  ): AsyncGenerator<DialogueEvent> {
    const { t0, sessionId, transcript } = turn;
    const timings: TurnTimings = { stt_ms: turn.sttMs, llm_first_token_ms: null, llm_total_ms: null, llm_first_sentence_ms: null, tts_first_audio_ms: null, tts_total_ms: null, first_audio_ms: null, total_ms: 0 };
    const result: DialogueResult = {
      session_id: sessionId,
      transcript,
      reply_text: '',
      audio: null,
      no_speech: false,
      degraded: [],
      engines: { stt: turn.sttEngine, llm: '', tts: null },
      usage: { prompt_tokens: 0, completion_tokens: 0 },
      timings,
    };
    if (transcript) yield { type: 'transcript', transcript };
    if (turn.userText === '') {
      // nothing was said: tell the client instead of sending empty text to the model
      result.no_speech = true;
      timings.total_ms = ms(t0);
      this.deps.metrics.dialogueDuration.observe({ outcome: 'no_speech' }, timings.total_ms / 1000);
      yield { type: 'done', result };
      return;
    }

    const events = new AsyncQueue<DialogueEvent>();
    const sentences = new AsyncQueue<string>();
    const ttsController = new AbortController();
    const stopTts = () => ttsController.abort(signal.reason);
    signal.addEventListener('abort', stopTts, { once: true });
    const audioParts: Buffer[] = [];
    let spoken: SpokenSentences | undefined;
    let ttsFailed = false;
    let firstSentenceAt: number | undefined;

    // --- TTS: one consumer of the sentence queue, audio in order
    const ttsTask = (async () => {
      if (!input.modalities.audio) return;
      try {
        this.deps.synthesis.assertAvailable();
        spoken = this.deps.synthesis.speakSentences(
          (async function* () {
            for await (const sentence of sentences) {
              firstSentenceAt ??= performance.now();
              yield sentence;
            }
          })(),
          { voice: input.voice, format: input.format, sampleRate: input.sampleRate, speed: input.speed },
          ttsController.signal,
        );
        for await (const bytes of spoken.bytes) {
          if (timings.first_audio_ms === null) {
            timings.first_audio_ms = ms(t0);
            timings.tts_first_audio_ms = firstSentenceAt === undefined ? null : ms(firstSentenceAt);
          }
          audioParts.push(bytes);
          events.push({ type: 'audio.delta', audio: bytes, format: spoken.format, sample_rate: spoken.sampleRate });
        }
        if (firstSentenceAt !== undefined) timings.tts_total_ms = ms(firstSentenceAt);
      } catch (error) {
        if (signal.aborted) return;
        ttsFailed = true;
        result.degraded.push({ stage: 'tts', reason: error instanceof Error ? error.message : String(error) });
        for await (const rest of sentences) void rest; // keep the LLM flowing; its text is still the reply
      }
    })();

    // --- LLM: text deltas out, complete sentences to TTS
    const llmTask = (async () => {
      const llmStarted = performance.now();
      const splitter = new SentenceSplitter();
      try {
        const generation = await this.deps.generation.start(
          { kind: 'chat', messages: turnMessages(input.instructions === undefined ? this.deps.prompts : { ...this.deps.prompts, system: input.instructions }, input.modalities.audio, historyWindow(turn.history, this.config.SESSION_HISTORY_TURNS, this.config.SESSION_HISTORY_TOKENS), turn.userText) },
          { maxTokens: input.maxTokens ?? this.config.DIALOGUE_MAX_TOKENS, temperature: input.temperature },
          signal,
          'stream',
          input.model,
        );
        result.engines.llm = generation.engine;
        for await (const event of generation.events) {
          if (event.type === 'delta') {
            timings.llm_first_token_ms ??= ms(llmStarted);
            result.reply_text += event.text;
            events.push({ type: 'text.delta', text: event.text });
            for (const sentence of splitter.push(event.text)) {
              timings.llm_first_sentence_ms ??= ms(llmStarted);
              sentences.push(sentence);
            }
          } else {
            result.usage = { prompt_tokens: event.result.usage.promptTokens, completion_tokens: event.result.usage.completionTokens };
          }
        }
        timings.llm_total_ms = ms(llmStarted);
        for (const sentence of splitter.flush()) {
          timings.llm_first_sentence_ms ??= ms(llmStarted);
          sentences.push(sentence);
        }
      } finally {
        sentences.end();
      }
    })();

    const finished = Promise.allSettled([llmTask, ttsTask]).then(() => events.end());
    let outcome = 'aborted';
    let deliveredText = '';
    try {
      for await (const event of events) {
        if (signal.aborted) break; // nothing more leaves once the turn is cancelled
        if (event.type === 'text.delta') deliveredText += event.text;
        yield event;
      }
      signal.throwIfAborted();
      await finished;
      await llmTask; // an LLM failure is the turn's failure
      signal.throwIfAborted();
      result.engines.tts = spoken?.engine() ?? null;
      if (input.modalities.audio && !ttsFailed && spoken && audioParts.length > 0) {
        const bytes = Buffer.concat(audioParts);
        result.audio = { bytes: spoken.format === 'wav' ? finalizeWav(bytes) : bytes, format: spoken.format, sample_rate: spoken.sampleRate, duration_seconds: Math.round(spoken.durationSeconds() * 1000) / 1000 };
      }
      if (!input.history) await this.remember({ owner: input.owner, id: sessionId }, turn.userText, result.reply_text, false, result);
      timings.total_ms = ms(t0);
      outcome = result.degraded.length ? 'degraded' : 'success';
      yield { type: 'done', result };
    } catch (error) {
      outcome = signal.aborted ? 'aborted' : 'error';
      throw error;
    } finally {
      signal.removeEventListener('abort', stopTts);
      ttsController.abort();
      if (outcome === 'aborted' && !input.history) {
        // record only what was delivered: the sentences that reached TTS (spoken replies) or the text the client received
        const delivered = input.modalities.audio && spoken ? spoken.spoken().join(' ') : deliveredText;
        void this.remember({ owner: input.owner, id: sessionId }, turn.userText, delivered, true, result).catch(() => undefined);
      }
      this.deps.metrics.dialogueDuration.observe({ outcome }, ms(t0) / 1000);
    }
  }

  /** Stores the user turn and the reply together; a store failure degrades the turn (said in `degraded`), never loses it silently. */
  private async remember(session: SessionRef, user: string, reply: string, interrupted: boolean, result: DialogueResult): Promise<void> {
    const at = new Date().toISOString();
    const turns: Turn[] = [
      { role: 'user', content: user, at },
      { role: 'assistant', content: reply, at, ...(interrupted ? { interrupted: true } : {}) },
    ];
    try {
      await this.deps.sessions.append(session, turns);
      if (this.deps.sessions.degraded()) {
        result.degraded.push({ stage: 'session', reason: 'Redis is unreachable: this turn is kept in this replica\'s memory only (SESSION_REDIS_FALLBACK).' });
      }
    } catch (error) {
      result.degraded.push({ stage: 'session', reason: `the turn was not saved: ${(error as Error).message}` });
      if (interrupted) throw error;
    }
  }

  /** Session history (GET /v1/sessions/{id}); 404 when unknown — or another key's. */
  async history(owner: string | undefined, sessionId: string): Promise<Turn[]> {
    if (!SESSION_ID_PATTERN.test(sessionId)) throw ApiError.badRequest('Invalid session id.', 'id', 'invalid_session_id');
    const turns = await this.deps.sessions.history({ owner, id: sessionId });
    if (turns.length === 0) throw new ApiError(404, 'not_found_error', `No session ${sessionId} (never created, deleted, or expired after SESSION_TTL_SECONDS).`, { code: 'session_not_found' });
    return turns;
  }

  async forget(owner: string | undefined, sessionId: string): Promise<void> {
    if (!SESSION_ID_PATTERN.test(sessionId)) throw ApiError.badRequest('Invalid session id.', 'id', 'invalid_session_id');
    if (!(await this.deps.sessions.delete({ owner, id: sessionId }))) throw new ApiError(404, 'not_found_error', `No session ${sessionId}.`, { code: 'session_not_found' });
  }
}
