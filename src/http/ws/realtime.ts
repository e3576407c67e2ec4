/**
 * WS /v1/realtime: the OpenAI Realtime API (GA protocol, WebSocket transport) on top of the same
 * dialogue pipeline as /ws/dialogue (src/dialogue/pipeline.ts: Whisper → Gemma → TTS at sentence
 * level, cancellation) and the same microphone side (src/http/ws/microphone.ts: WebRTC VAD,
 * resampling to 16 kHz). Voice-agent clients written for OpenAI (the `openai` SDK's realtime
 * client, @openai/agents-realtime) talk to it unchanged. What is supported: the WS_DOC below and
 * the README; WebRTC and SIP are not.
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { z } from 'zod';
import type { Config } from '../../config.ts';
import type { DialogueService, DialogueTurnInput, TurnTimings } from '../../dialogue/pipeline.ts';
import { decodeG711, encodeG711 } from '../../audio/g711.ts';
import { bytesToInt16, int16ToBytes, int16ToFloat32 } from '../../audio/pcm.ts';
import { createStreamResampler, type StreamResampler } from '../../audio/resample.ts';
import { VAD_SAMPLE_RATE } from '../../audio/vad.ts';
import type { TranscriptionService } from '../../services/transcription.ts';
import { Conversation, itemText, itemView, type Content, type Item } from '../../realtime/conversation.ts';
import type { ClientSecrets } from '../../realtime/client-secrets.ts';
import { applyUpdate, defaultSession, formatRate, newId, responseOptions, sessionUpdate, sessionView, vadMode, type RealtimeAudioFormat, type RealtimeSession, type ResponseOptions, type SessionUpdate } from '../../realtime/session.ts';
import { toApiError } from '../error-handling.ts';
import type { WsDocs } from '../ws-docs.ts';
import { Microphone, partialTranscriber } from './microphone.ts';
import { JsonSocket, refuseUnavailable } from './socket.ts';
import { settled, type SocketDrain } from './shutdown.ts';

const base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, { error: 'must be base64' });
const eventId = z.string().max(128).optional();
const itemId = z.string().min(1).max(128);

const contentPart = z.discriminatedUnion('type', [
  z.object({ type: z.literal('input_text'), text: z.string().max(100_000) }).strict(),
  z.object({ type: z.literal('input_audio'), audio: base64, transcript: z.string().max(100_000).nullable().optional() }).strict(),
  z.object({ type: z.literal('output_text'), text: z.string().max(100_000) }).strict(),
  z.object({ type: z.literal('text'), text: z.string().max(100_000) }).strict(),
]);

const clientEvents = {
  'session.update': z.object({ type: z.literal('session.update'), event_id: eventId, session: sessionUpdate }).strict(),
  'input_audio_buffer.append': z.object({ type: z.literal('input_audio_buffer.append'), event_id: eventId, audio: base64 }).strict(),
  'input_audio_buffer.commit': z.object({ type: z.literal('input_audio_buffer.commit'), event_id: eventId }).strict(),
  'input_audio_buffer.clear': z.object({ type: z.literal('input_audio_buffer.clear'), event_id: eventId }).strict(),
  'conversation.item.create': z
    .object({
      type: z.literal('conversation.item.create'),
      event_id: eventId,
      previous_item_id: z.string().max(128).nullable().optional(),
      item: z
        .object({
          id: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).optional(),
          type: z.literal('message', { error: 'only message items are supported (no function calls)' }),
          object: z.literal('realtime.item').optional(),
          status: z.enum(['completed', 'incomplete', 'in_progress']).optional(),
          role: z.enum(['user', 'assistant', 'system']),
          content: z.array(contentPart).min(1).max(16),
        })
        .strict(),
    })
    .strict(),
  'conversation.item.retrieve': z.object({ type: z.literal('conversation.item.retrieve'), event_id: eventId, item_id: itemId }).strict(),
  'conversation.item.delete': z.object({ type: z.literal('conversation.item.delete'), event_id: eventId, item_id: itemId }).strict(),
  'conversation.item.truncate': z
    .object({ type: z.literal('conversation.item.truncate'), event_id: eventId, item_id: itemId, content_index: z.number().int().min(0), audio_end_ms: z.number().int().min(0) })
    .strict(),
  'response.create': z.object({ type: z.literal('response.create'), event_id: eventId, response: responseOptions.optional() }).strict(),
  'response.cancel': z.object({ type: z.literal('response.cancel'), event_id: eventId, response_id: z.string().max(128).optional() }).strict(),
} as const;
type ClientEvent = { [K in keyof typeof clientEvents]: z.infer<(typeof clientEvents)[K]> }[keyof typeof clientEvents];

export const REALTIME_WS_DOC = {
  summary: 'OpenAI Realtime API (WebSocket): voice agents on Whisper → Gemma → TTS',
  tags: ['dialogue'],
  description: `The OpenAI Realtime API (GA protocol) over a WebSocket, served by the same pipeline as /ws/dialogue: clients written for OpenAI (the \`openai\` SDK's \`OpenAIRealtimeWS\`, \`@openai/agents-realtime\`'s \`RealtimeSession\`) work unchanged. \`?model=\` is optional and echoed; it (or \`session.model\`) picks the LLM by id or alias of GET /v1/models, and \`session.audio.input.transcription.model\` the speech-to-text model; OpenAI's names (\`gpt-realtime\`, \`gpt-realtime-mini\`, \`gpt-4o-realtime-preview*\`, \`gpt-4o-mini-realtime-preview*\`; \`whisper-1\`, \`gpt-4o-transcribe\`, \`gpt-4o-mini-transcribe\`) pick the defaults. With a models file, another name gets an \`error\` event \`model_not_found\` (at connection: then close 1008; in \`session.update\`: the session is unchanged). Also authenticates with the subprotocols \`realtime, openai-insecure-api-key.<key>\` (browsers; \`ek_…\` ephemeral keys from \`POST /v1/realtime/client_secrets\` are the safe choice there).

**Client events**: \`session.update\` (\`type\` \`realtime\`|\`transcription\`, \`instructions\`, \`output_modalities\`, \`audio.input.format\` \`audio/pcm\` (24 kHz) | \`audio/pcmu\` | \`audio/pcma\`, \`audio.input.transcription\`, \`audio.input.turn_detection\` (\`server_vad\`/\`semantic_vad\`: our WebRTC VAD; \`null\`: manual turns), \`audio.output.format\`/\`voice\`/\`speed\`, \`max_output_tokens\`; unknown or unsupported fields get an \`error\` naming them), \`input_audio_buffer.append\`/\`commit\`/\`clear\`, \`conversation.item.create\` (message items: user text or audio, assistant text, system text)/\`retrieve\`/\`delete\`/\`truncate\`, \`response.create\` (\`instructions\`, \`output_modalities\`, \`max_output_tokens\`, \`conversation: "none"\`), \`response.cancel\`.

**Server events**, in OpenAI's order: \`session.created\`/\`updated\`, \`input_audio_buffer.speech_started\`/\`speech_stopped\`/\`committed\`/\`cleared\`, \`conversation.item.added\`/\`done\`/\`retrieved\`/\`deleted\`/\`truncated\`, \`conversation.item.input_audio_transcription.delta\`/\`completed\`, \`response.created\`, \`response.output_item.added\`, \`response.content_part.added\`, \`response.output_audio.delta\` (base64) with \`response.output_audio_transcript.delta\` (or \`response.output_text.delta\`), their \`.done\`, \`response.content_part.done\`, \`response.output_item.done\`, \`response.done\` (\`completed\`, \`cancelled\` on barge-in or \`response.cancel\`, \`incomplete\` at \`max_output_tokens\`, \`failed\`; \`usage\`), \`rate_limits.updated\`, \`error\` (\`error.event_id\`: the client event that caused it).

Not supported: function calling (\`tools\` must be empty), WebRTC and SIP transports, noise reduction. Conversations live in the connection (not in /v1/sessions).`,
};

interface ActiveResponse {
  id: string;
  controller: AbortController;
  finished: boolean;
  cancelReason?: 'turn_detected' | 'client_cancelled';
}

class RealtimeError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly param: string | null = null,
  ) {
    super(message);
  }
}

export const realtimeSocketRoutes: FastifyPluginAsync<{ dialogue: DialogueService; transcription: TranscriptionService; config: Config; wsDocs: WsDocs; drain: SocketDrain; clientSecrets: ClientSecrets }> = async (
  app,
  { dialogue, transcription, config, wsDocs, drain, clientSecrets },
) => {
  wsDocs.set('/v1/realtime', REALTIME_WS_DOC);
  app.get('/v1/realtime', { websocket: true }, (socket, request) => {
    if (refuseUnavailable(socket, request, () => dialogue.assertAvailable())) return;
    new RealtimeConnection(socket, request, { dialogue, transcription, config, drain }, clientSecrets.sessionFor(request)).start();
  });
};

class RealtimeConnection {
  private session: RealtimeSession;
  private readonly conversation: Conversation;
  private readonly out: JsonSocket;
  private readonly closed = new AbortController();
  private active: ActiveResponse | undefined;
  private tail: Promise<void> = Promise.resolve();
  /** Transcriptions of a transcription session, in order. */
  private transcripts: Promise<void> = Promise.resolve();
  // --- the input audio buffer
  private mic: Microphone | undefined;
  private micGeneration = 0;
  private early: Buffer[] = [];
  /** Manual turns: the uncommitted buffer, resampled to 16 kHz as it arrives. */
  private resampler: StreamResampler | undefined;
  private pending: Int16Array[] = [];
  private pendingSamples = 0;
  /** The item a detected speech turn will become (announced with speech_started). */
  private speechItemId: string | undefined;
  /** Partial transcript text already sent as deltas, by item (until its transcript is completed). */
  private readonly captions = new Map<string, string>();
  private readonly gate;

  constructor(
    private readonly socket: WebSocket,
    private readonly request: FastifyRequest,
    private readonly deps: { dialogue: DialogueService; transcription: TranscriptionService; config: Config; drain: SocketDrain },
    granted: SessionUpdate | undefined,
  ) {
    const model = typeof (request.query as Record<string, unknown>)?.model === 'string' ? ((request.query as Record<string, string>).model ?? '').slice(0, 200) : undefined;
    this.session = defaultSession(deps.config, model || undefined);
    // an ephemeral key's connection starts with the session it was minted with
    if (granted) this.session = applyUpdate(this.session, granted, deps.config);
    this.out = new JsonSocket(socket, request, '/v1/realtime');
    // past its bounds the oldest items go, and the client is told as for its own delete
    this.conversation = new Conversation(deps.config.REALTIME_MAX_CONVERSATION_MB * 1024 * 1024, (item) => this.send({ type: 'conversation.item.deleted', item_id: item.id }));
    // on shutdown the response in progress (or the speech being heard) is finished before the socket closes
    this.gate = deps.drain.register(this.out, async () => {
      this.mic?.commit();
      await settled(() => this.tail);
      await settled(() => this.transcripts);
    });
  }

  start(): void {
    // the models the session names (?model=, an ephemeral key's session) must exist: else the error event, then close
    try {
      this.checkModels(this.session);
    } catch (error) {
      this.sendError(error);
      this.socket.close(1008, 'model_not_found');
      return;
    }
    this.socket.on('message', (data: Buffer, isBinary: boolean) => this.onMessage(data, isBinary));
    this.socket.on('close', () => {
      this.closed.abort(new DOMException('socket closed', 'AbortError'));
      this.micGeneration++;
      this.mic?.close();
      this.mic = undefined;
      this.resampler?.close();
    });
    this.send({ type: 'session.created', session: sessionView(this.session) });
    this.reopenMicrophone();
  }

  /** 404 `model_not_found` when the session's LLM or speech-to-text model names no configured model (with a models file). */
  private checkModels(session: RealtimeSession): void {
    this.deps.dialogue.checkModels(session.model, session.transcription?.model);
  }

  private send(event: Record<string, unknown>): void {
    this.out.send({ event_id: newId('event'), ...event });
  }

  private sendError(error: unknown, clientEventId?: string): void {
    let body: Record<string, unknown>;
    if (error instanceof RealtimeError) body = { type: 'invalid_request_error', code: error.code, message: error.message, param: error.param };
    else {
      const apiError = toApiError(error as Error);
      if (apiError.statusCode >= 500) this.request.log.error({ err: error }, '/v1/realtime failed');
      const { type, code, message, param } = apiError.envelope(this.request.id).error as { type: string; code: string | null; message: string; param: string | null };
      body = { type, code, message, param };
    }
    this.send({ type: 'error', error: { ...body, event_id: clientEventId ?? null } });
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (!this.gate.accepting()) return;
    let json: unknown;
    try {
      if (isBinary) throw new Error('binary');
      json = JSON.parse(data.toString('utf8'));
    } catch {
      return this.sendError(new RealtimeError('invalid_json', 'Client events are JSON text frames, e.g. {"type":"input_audio_buffer.append","audio":"<base64>"}.'));
    }
    const raw = (typeof json === 'object' && json !== null ? json : {}) as { type?: unknown; event_id?: unknown };
    const clientEventId = typeof raw.event_id === 'string' ? raw.event_id.slice(0, 128) : undefined;
    // own keys only: "constructor" or "__proto__" must not find Object's members
    const schema = typeof raw.type === 'string' && Object.hasOwn(clientEvents, raw.type) ? clientEvents[raw.type as keyof typeof clientEvents] : undefined;
    if (!schema) {
      const what = typeof raw.type === 'string' ? `Unknown event type "${raw.type.slice(0, 100)}"` : 'Every event needs a string `type`';
      return this.sendError(new RealtimeError('invalid_event', `${what}; supported: ${Object.keys(clientEvents).join(', ')}.`, 'type'), clientEventId);
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const keys = issue.code === 'unrecognized_keys' ? issue.keys : [];
      const path = [...issue.path, ...(keys.length === 1 ? keys : [])].join('.');
      const message = keys.length ? `Unknown or unsupported field${keys.length > 1 ? 's' : ''} ${keys.map((k) => `"${[...issue.path, k].join('.')}"`).join(', ')} in ${raw.type as string}.` : `Invalid ${raw.type as string}: ${path || 'event'}: ${issue.message}`;
      return this.sendError(new RealtimeError(keys.length ? 'unknown_parameter' : 'invalid_value', message, path || null), clientEventId);
    }
    try {
      this.handle(parsed.data as ClientEvent);
    } catch (error) {
      this.sendError(error, clientEventId);
    }
  }

  private handle(event: ClientEvent): void {
    switch (event.type) {
      case 'session.update': {
        const before = this.session;
        const next = applyUpdate(this.session, event.session, this.deps.config);
        this.checkModels(next); // an unknown model: the error event, the session unchanged
        this.session = next;
        this.send({ type: 'session.updated', session: sessionView(this.session) });
        const changed = (a: unknown, b: unknown) => JSON.stringify(a) !== JSON.stringify(b);
        if (changed(before.input_format, this.session.input_format) || changed(before.turn_detection, this.session.turn_detection)) this.reopenMicrophone();
        return;
      }
      case 'input_audio_buffer.append':
        return this.append(Buffer.from(event.audio, 'base64'));
      case 'input_audio_buffer.commit':
        return this.commit();
      case 'input_audio_buffer.clear':
        this.pending = [];
        this.pendingSamples = 0;
        this.speechItemId = undefined;
        this.reopenMicrophone(); // a fresh VAD: the turn it was hearing is gone
        return this.send({ type: 'input_audio_buffer.cleared' });
      case 'conversation.item.create':
        return this.createItem(event);
      case 'conversation.item.retrieve':
        return this.send({ type: 'conversation.item.retrieved', item: itemView(this.item(event.item_id)) });
      case 'conversation.item.delete':
        this.item(event.item_id);
        this.conversation.delete(event.item_id);
        return this.send({ type: 'conversation.item.deleted', item_id: event.item_id });
      case 'conversation.item.truncate':
        return this.truncate(event.item_id, event.content_index, event.audio_end_ms);
      case 'response.create':
        if (this.session.type === 'transcription') throw new RealtimeError('invalid_session_type', 'A transcription session makes no responses.', 'type');
        if (this.active && !this.active.finished && !this.active.controller.signal.aborted) throw new RealtimeError('conversation_already_has_active_response', `Response ${this.active.id} is still in progress: cancel it (response.cancel) or wait for its response.done.`);
        return this.respond(event.response ?? {});
      case 'response.cancel':
        if (!this.active || this.active.finished || (event.response_id !== undefined && event.response_id !== this.active.id)) throw new RealtimeError('response_cancel_not_active', 'There is no response in progress to cancel.', 'response_id');
        return this.cancel('client_cancelled');
    }
  }

  private item(id: string): Item {
    const item = this.conversation.get(id);
    if (!item) throw new RealtimeError('item_not_found', `No item ${id.slice(0, 128)} in this conversation.`, 'item_id');
    return item;
  }

  // --- input audio ------------------------------------------------------------------------

  private reopenMicrophone(): void {
    this.openMicrophone().catch((error: unknown) => {
      this.request.log.error({ err: error }, '/v1/realtime: the VAD could not be opened');
      this.sendError(error);
    });
  }

  /** (Re)opens the VAD for the current format and turn detection; audio meanwhile is kept, not lost. */
  private async openMicrophone(): Promise<void> {
    const generation = ++this.micGeneration;
    this.mic?.close();
    this.mic = undefined;
    this.resampler?.close();
    this.resampler = undefined;
    this.early = [];
    const vad = this.session.turn_detection;
    if (this.closed.signal.aborted) return;
    if (!vad) {
      const resampler = await createStreamResampler(formatRate(this.session.input_format), VAD_SAMPLE_RATE);
      if (generation !== this.micGeneration) return resampler.close();
      this.resampler = resampler;
      for (const data of this.early.splice(0)) this.append(data, true);
      return;
    }
    const settings: Config = { ...this.deps.config, VAD_MODE: vadMode(vad.threshold), VAD_SILENCE_MS: vad.silence_duration_ms, VAD_PREROLL_MS: vad.prefix_padding_ms };
    const mic = await Microphone.open(settings, formatRate(this.session.input_format), {
      onTurnEvent: (e) => this.onTurnEvent(e),
      // live captions: the turn so far is transcribed every STT_PARTIAL_INTERVAL_MS while the user speaks
      onPartial: partialTranscriber(this.deps.transcription, this.closed.signal, () => ({ language: this.session.transcription?.language?.toLowerCase(), model: this.session.transcription?.model }), (text) => this.partial(text)),
    });
    if (generation !== this.micGeneration) return mic.close();
    this.mic = mic;
    for (const data of this.early.splice(0)) mic.push(data);
  }

  /** PCM16 at the input format's rate. */
  private toPcm(bytes: Buffer, format: RealtimeAudioFormat): Buffer {
    if (format.type === 'audio/pcm') return bytes;
    return int16ToBytes(decodeG711(bytes, format.type === 'audio/pcmu' ? 'mulaw' : 'alaw'));
  }

  /** Input audio (already PCM16 when `decoded`): to the VAD, or to the manual buffer; kept while either is being opened. */
  private append(bytes: Buffer, decoded = false): void {
    const pcm = decoded ? bytes : this.toPcm(bytes, this.session.input_format);
    const sink = this.session.turn_detection ? this.mic : this.resampler;
    if (!sink) {
      this.early.push(pcm);
      return;
    }
    if (this.mic) return this.mic.push(pcm);
    const samples = this.resampler!.push(bytesToInt16(pcm.length % 2 ? pcm.subarray(0, pcm.length - 1) : pcm));
    if (this.pendingSamples + samples.length > this.deps.config.WS_MAX_TURN_SECONDS * VAD_SAMPLE_RATE) {
      throw new RealtimeError('input_audio_buffer_too_large', `The input audio buffer holds at most ${this.deps.config.WS_MAX_TURN_SECONDS} s (WS_MAX_TURN_SECONDS): commit or clear it. This append was dropped.`, 'audio');
    }
    this.pending.push(samples);
    this.pendingSamples += samples.length;
  }

  private commit(): void {
    if (this.session.turn_detection) {
      if (!this.mic?.speaking) throw new RealtimeError('input_audio_buffer_commit_empty', 'No speech in the input audio buffer to commit.');
      this.mic.commit();
      return;
    }
    if (this.pendingSamples === 0) throw new RealtimeError('input_audio_buffer_commit_empty', 'The input audio buffer is empty.');
    const all = new Int16Array(this.pendingSamples);
    let at = 0;
    for (const chunk of this.pending) {
      all.set(chunk, at);
      at += chunk.length;
    }
    this.pending = [];
    this.pendingSamples = 0;
    this.addSpokenItem(newId('item'), int16ToFloat32(all), false);
  }

  private onTurnEvent(event: Parameters<Parameters<typeof Microphone.open>[2]['onTurnEvent']>[0]): void {
    if (event.type === 'speech_started') {
      this.speechItemId = newId('item');
      this.send({ type: 'input_audio_buffer.speech_started', audio_start_ms: event.atMs, item_id: this.speechItemId });
      if (this.session.turn_detection?.interrupt_response) this.cancel('turn_detected'); // in the same tick as the detection
      return;
    }
    const id = this.speechItemId ?? newId('item');
    this.speechItemId = undefined;
    this.send({ type: 'input_audio_buffer.speech_stopped', audio_end_ms: event.atMs, item_id: id });
    if (event.type === 'speech_discarded') {
      this.captions.delete(id);
      return this.send({ type: 'input_audio_buffer.cleared' }); // too short to be speech
    }
    this.addSpokenItem(id, event.audio, this.session.turn_detection?.create_response ?? false);
  }

  /** A committed spoken turn: the item, then (server VAD) the response or (transcription session) the transcript. */
  private addSpokenItem(id: string, audio: Float32Array, respond: boolean): void {
    const item: Item = { id, role: 'user', status: 'completed', content: [{ type: 'input_audio', transcript: null }], audio };
    const previous = this.conversation.last()?.id ?? null;
    this.conversation.insert(item);
    this.send({ type: 'input_audio_buffer.committed', previous_item_id: previous, item_id: id });
    this.send({ type: 'conversation.item.added', previous_item_id: previous, item: itemView(item) });
    this.send({ type: 'conversation.item.done', previous_item_id: previous, item: itemView(item) });
    if (this.session.type === 'transcription') return this.transcribe(item);
    if (respond) this.respond({});
  }

  /** Transcription sessions: each committed turn is transcribed, in order. */
  private transcribe(item: Item): void {
    const audio = item.audio!;
    item.audio = undefined;
    this.transcripts = this.transcripts.then(async () => {
      try {
        const { transcript } = await this.deps.transcription.transcribe({ audio, language: this.session.transcription?.language?.toLowerCase(), task: 'transcribe', wordTimestamps: false }, this.closed.signal, undefined, this.session.transcription?.model);
        this.transcribed(item, transcript.text.trim(), audio.length / VAD_SAMPLE_RATE);
      } catch (error) {
        if (this.closed.signal.aborted) return;
        const { code, message } = toApiError(error as Error);
        this.send({ type: 'conversation.item.input_audio_transcription.failed', item_id: item.id, content_index: 0, error: { type: 'transcription_error', code, message, param: null } });
      }
    });
  }

  /**
   * A partial transcript of the speech in progress, as a `delta` of the item it will become (the
   * id announced by speech_started): only what extends the text already sent — a partial that
   * rewrites earlier words is skipped, and `completed` has the final text anyway.
   */
  private partial(text: string): void {
    const id = this.speechItemId;
    if (!id || !this.session.transcription) return;
    const sent = this.captions.get(id) ?? '';
    if (!text.startsWith(sent) || text.length === sent.length) return;
    this.captions.set(id, text);
    this.send({ type: 'conversation.item.input_audio_transcription.delta', item_id: id, content_index: 0, delta: text.slice(sent.length) });
  }

  private transcribed(item: Item, text: string, seconds: number): void {
    const part = item.content[0];
    if (part?.type === 'input_audio') part.transcript = text;
    const sent = this.captions.get(item.id) ?? '';
    this.captions.delete(item.id);
    if (!this.session.transcription) return;
    const rest = text.startsWith(sent) ? text.slice(sent.length) : text;
    if (rest) this.send({ type: 'conversation.item.input_audio_transcription.delta', item_id: item.id, content_index: 0, delta: rest });
    this.send({ type: 'conversation.item.input_audio_transcription.completed', item_id: item.id, content_index: 0, transcript: text, usage: { type: 'duration', seconds: Math.round(seconds * 1000) / 1000 } });
  }

  // --- conversation items -----------------------------------------------------------------

  private createItem(event: Extract<ClientEvent, { type: 'conversation.item.create' }>): void {
    const { item: spec, previous_item_id: previousId } = event;
    if (spec.id && this.conversation.has(spec.id)) throw new RealtimeError('item_id_exists', `Item ${spec.id} already exists.`, 'item.id');
    if (previousId && previousId !== 'root' && !this.conversation.has(previousId)) throw new RealtimeError('item_not_found', `No item ${previousId.slice(0, 128)} in this conversation.`, 'previous_item_id');
    const content: Content[] = [];
    let audio: Float32Array | undefined;
    for (const part of spec.content) {
      if (part.type === 'input_audio') {
        if (spec.role !== 'user') throw new RealtimeError('invalid_value', 'Only user items hold input_audio.', 'item.content');
        audio = this.decodeItemAudio(Buffer.from(part.audio, 'base64'));
        content.push({ type: 'input_audio', transcript: part.transcript ?? null });
        if (part.transcript) audio = undefined; // the client says what it was
      } else if (spec.role === 'assistant') content.push({ type: 'output_text', text: part.text });
      else content.push({ type: 'input_text', text: part.text });
    }
    const item: Item = { id: spec.id ?? newId('item'), role: spec.role, status: 'completed', content, ...(audio ? { audio } : {}) };
    const previous = this.conversation.insert(item, previousId === 'root' ? null : (previousId ?? undefined));
    this.send({ type: 'conversation.item.added', previous_item_id: previous, item: itemView(item) });
    this.send({ type: 'conversation.item.done', previous_item_id: previous, item: itemView(item) });
  }

  /** Item audio is in the session's input format; kept at 16 kHz until a response transcribes it. */
  private decodeItemAudio(bytes: Buffer): Float32Array {
    const pcm = this.toPcm(bytes, this.session.input_format);
    const samples = bytesToInt16(pcm.length % 2 ? pcm.subarray(0, pcm.length - 1) : pcm);
    const rate = formatRate(this.session.input_format);
    if (samples.length > this.deps.config.WS_MAX_TURN_SECONDS * rate) throw new RealtimeError('audio_too_long', `Item audio is limited to ${this.deps.config.WS_MAX_TURN_SECONDS} s (WS_MAX_TURN_SECONDS).`, 'item.content');
    return resampleSync(int16ToFloat32(samples), rate, VAD_SAMPLE_RATE);
  }

  /** What the user heard of an assistant's audio: the transcript is cut in proportion (at a word). */
  private truncate(id: string, contentIndex: number, audioEndMs: number): void {
    const item = this.item(id);
    const part = item.content[contentIndex];
    if (item.role !== 'assistant' || part?.type !== 'output_audio') throw new RealtimeError('invalid_value', 'Only the audio of an assistant item can be truncated.', 'content_index');
    const total = item.audioMs ?? 0;
    if (audioEndMs > total) throw new RealtimeError('invalid_value', `audio_end_ms ${audioEndMs} is past the item's ${Math.round(total)} ms of audio.`, 'audio_end_ms');
    if (total > 0 && audioEndMs < total) {
      const keep = Math.floor((part.transcript.length * audioEndMs) / total);
      const cut = part.transcript.slice(0, keep);
      part.transcript = keep >= part.transcript.length ? part.transcript : cut.slice(0, Math.max(0, cut.lastIndexOf(' '))).trimEnd();
      item.audioMs = audioEndMs;
      item.status = 'incomplete';
    }
    this.send({ type: 'conversation.item.truncated', item_id: id, content_index: contentIndex, audio_end_ms: audioEndMs });
  }

  // --- responses --------------------------------------------------------------------------

  private cancel(reason: 'turn_detected' | 'client_cancelled'): void {
    const response = this.active;
    if (!response) return;
    if (response.finished) return; // already done: a client playing it stops playback itself on speech_started
    this.active = undefined;
    response.cancelReason = reason;
    response.controller.abort(new DOMException(reason, 'AbortError'));
  }

  private respond(options: ResponseOptions): void {
    const response: ActiveResponse = { id: newId('resp'), controller: new AbortController(), finished: false };
    this.active = response;
    const session = this.session;
    this.tail = this.tail.then(() => this.runResponse(response, session, options));
  }

  private async runResponse(response: ActiveResponse, session: RealtimeSession, options: ResponseOptions): Promise<void> {
    const signal = AbortSignal.any([response.controller.signal, this.closed.signal]);
    const audioOut = (options.output_modalities ?? session.output_modalities).includes('audio');
    const inConversation = options.conversation !== 'none';
    const maxTokens = options.max_output_tokens ?? session.max_output_tokens;
    const view = (status: string, extra: Record<string, unknown> = {}) => ({
      object: 'realtime.response',
      id: response.id,
      status,
      status_details: null,
      output: [] as unknown[],
      conversation_id: inConversation ? session.id : null,
      output_modalities: [audioOut ? 'audio' : 'text'],
      max_output_tokens: maxTokens,
      audio: { output: { format: session.output_format, voice: session.voice ?? 'default' } },
      usage: null,
      metadata: options.metadata ?? null,
      ...extra,
    });
    // announced even when cancelled before it began: every response.done follows its response.created (OpenAI's order)
    this.send({ type: 'response.created', response: view('in_progress') });
    if (signal.aborted) return this.finishCancelled(response, view);

    const user = this.conversation.lastUser();
    const item: Item = { id: newId('item'), role: 'assistant', status: 'in_progress', content: [], audioMs: 0 };
    const part: Content = audioOut ? { type: 'output_audio', transcript: '' } : { type: 'output_text', text: '' };
    let started = false;
    const ids = { response_id: response.id, item_id: item.id, output_index: 0, content_index: 0 };
    const startItem = () => {
      if (started) return;
      started = true;
      this.send({ type: 'response.output_item.added', response_id: response.id, output_index: 0, item: itemView(item) });
      if (inConversation) {
        const previous = this.conversation.insert(item);
        this.send({ type: 'conversation.item.added', previous_item_id: previous, item: itemView(item) });
      }
      item.content = [part];
      this.send({ type: 'response.content_part.added', ...ids, part: audioOut ? { type: 'audio', transcript: '' } : { type: 'text', text: '' } });
    };
    const words = () => (part.type === 'output_audio' ? part.transcript : part.type === 'output_text' ? part.text : '');
    const finishItem = (status: 'completed' | 'incomplete') => {
      if (!started) return;
      item.status = status;
      if (audioOut) {
        this.send({ type: 'response.output_audio.done', ...ids });
        this.send({ type: 'response.output_audio_transcript.done', ...ids, transcript: words() });
      } else this.send({ type: 'response.output_text.done', ...ids, text: words() });
      this.send({ type: 'response.content_part.done', ...ids, part: audioOut ? { type: 'audio', transcript: words() } : { type: 'text', text: words() } });
      this.send({ type: 'response.output_item.done', response_id: response.id, output_index: 0, item: itemView(item) });
      if (inConversation) this.send({ type: 'conversation.item.done', item: itemView(item) });
    };
    let usage: Record<string, unknown> | null = null;
    let timings: TurnTimings | undefined;
    let status: 'completed' | 'incomplete' | 'failed' = 'completed';
    let failure: Record<string, unknown> | null = null;
    try {
      if (!user) throw new RealtimeError('no_user_message', 'The conversation has no user message to respond to: add one (conversation.item.create or input audio) first.');
      const system = [options.instructions ?? session.instructions, this.conversation.systemText()].filter(Boolean).join('\n\n');
      const input: DialogueTurnInput = {
        ...(user.audio ? { audio: { samples: user.audio, duration: user.audio.length / VAD_SAMPLE_RATE, source: { container: 'pcm', bytes: user.audio.length * 2, sampleRate: VAD_SAMPLE_RATE, channels: 1 } } } : { text: itemText(user) || ' ' }),
        history: this.conversation.historyBefore(user),
        instructions: system,
        owner: undefined,
        language: session.transcription?.language?.toLowerCase(),
        model: session.model,
        sttModel: session.transcription?.model,
        modalities: { text: true, audio: audioOut },
        voice: session.voice === 'default' ? undefined : session.voice,
        speed: session.speed,
        format: 'pcm',
        sampleRate: formatRate(session.output_format),
        ...(maxTokens === 'inf' ? {} : { maxTokens }),
      };
      const spokenAudio = user.audio;
      const run = await this.deps.dialogue.start(input, signal);
      for await (const event of run.events) {
        if (event.type === 'transcript') {
          user.audio = undefined;
          this.transcribed(user, event.transcript.text.trim(), (spokenAudio?.length ?? 0) / VAD_SAMPLE_RATE);
        } else if (event.type === 'text.delta') {
          startItem();
          if (part.type === 'output_audio') part.transcript += event.text;
          else if (part.type === 'output_text') part.text += event.text;
          this.send({ type: audioOut ? 'response.output_audio_transcript.delta' : 'response.output_text.delta', ...ids, delta: event.text });
        } else if (event.type === 'audio.delta') {
          startItem();
          const samples = bytesToInt16(event.audio);
          const wire = session.output_format.type === 'audio/pcm' ? event.audio : encodeG711(samples, session.output_format.type === 'audio/pcmu' ? 'mulaw' : 'alaw');
          item.audioMs = (item.audioMs ?? 0) + (samples.length / event.sample_rate) * 1000;
          this.send({ type: 'response.output_audio.delta', ...ids, delta: wire.toString('base64') });
          await this.drained();
        } else {
          const r = event.result;
          timings = r.timings;
          usage = { total_tokens: r.usage.prompt_tokens + r.usage.completion_tokens, input_tokens: r.usage.prompt_tokens, output_tokens: r.usage.completion_tokens, input_token_details: { text_tokens: r.usage.prompt_tokens, audio_tokens: 0, cached_tokens: 0 }, output_token_details: { text_tokens: r.usage.completion_tokens, audio_tokens: 0 } };
          if (maxTokens !== 'inf' && r.usage.completion_tokens >= maxTokens) status = 'incomplete';
          // the reply fell back to text (an unknown voice, the voice engine down): say why instead of going silent
          for (const d of r.degraded) if (d.stage === 'tts') this.sendError(new RealtimeError('audio_unavailable', `This reply has no audio: ${d.reason}`, 'audio.output.voice'));
        }
      }
      signal.throwIfAborted();
    } catch (error) {
      if (signal.aborted) {
        finishItem('incomplete');
        return this.finishCancelled(response, view, started ? [itemView(item)] : []);
      }
      status = 'failed';
      const e = error instanceof RealtimeError ? { type: 'invalid_request_error', code: error.code, message: error.message } : (({ type, code, message }) => ({ type, code, message }))(toApiError(error as Error).envelope(this.request.id).error as { type: string; code: string; message: string });
      if (!(error instanceof RealtimeError) && toApiError(error as Error).statusCode >= 500) this.request.log.error({ err: error }, '/v1/realtime response failed');
      failure = { type: 'failed', error: e };
    }
    response.finished = true;
    finishItem(status === 'completed' ? 'completed' : 'incomplete');
    const details = status === 'incomplete' ? { type: 'incomplete', reason: 'max_output_tokens' } : failure;
    this.send({ type: 'response.done', response: view(status, { status_details: details, output: started ? [itemView(item)] : [], usage }) });
    // one line per response, as the HTTP routes have per request: where the time went (the models' stages)
    this.request.log.info({ response_id: response.id, status, timings }, 'realtime response done');
    this.send({ type: 'rate_limits.updated', rate_limits: [] });
  }

  private finishCancelled(response: ActiveResponse, view: (status: string, extra?: Record<string, unknown>) => object, output: unknown[] = []): void {
    response.finished = true;
    if (this.closed.signal.aborted) return;
    this.send({ type: 'response.done', response: view('cancelled', { status_details: { type: 'cancelled', reason: response.cancelReason ?? 'client_cancelled' }, output }) });
    this.send({ type: 'rate_limits.updated', rate_limits: [] });
  }

  /** Backpressure: waits while the socket's send buffer is above 1 MiB (a slow client slows TTS, not our memory). */
  private async drained(): Promise<void> {
    while (this.out.open && this.socket.bufferedAmount > 1_048_576) await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Linear interpolation to 16 kHz for audio sent inside an item (synchronous, so items join the
 * conversation in the order they arrive; streamed audio goes through libsamplerate instead).
 */
function resampleSync(samples: Float32Array, from: number, to: number): Float32Array {
  if (from === to) return samples;
  const out = new Float32Array(Math.floor((samples.length * to) / from));
  const step = from / to;
  for (let i = 0; i < out.length; i++) {
    const x = i * step;
    const j = Math.floor(x);
    const f = x - j;
    out[i] = (samples[j] ?? 0) * (1 - f) + (samples[j + 1] ?? samples[j] ?? 0) * f;
  }
  return out;
}
