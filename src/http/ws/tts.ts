/**
 * WS /ws/tts: text in (whole, or piece by piece as an LLM writes it), speech out. Each complete
 * sentence is synthesized as soon as it is complete, while more text arrives; `flush` speaks the
 * rest and ends the utterance. Audio goes out as binary frames in one continuous stream per
 * utterance (raw PCM16 by default; wav, mp3, opus, flac or aac on request), framed by JSON events.
 * Protocol: docs/websockets.md and the WS_DOC below.
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { z } from 'zod';
import { AUDIO_FORMATS, type AudioFormat } from '../../audio/formats.ts';
import type { SynthesisService } from '../../services/synthesis.ts';
import { SentenceSplitter } from '../../text/sentences.ts';
import { AsyncQueue } from '../../util/async-queue.ts';
import { ApiError } from '../../errors.ts';
import { badMessage, JsonSocket, parseQuery, refuseUnavailable } from './socket.ts';
import { settled, type SocketDrain, type SocketGate } from './shutdown.ts';
import type { WsDocs } from '../ws-docs.ts';
import { speedSchema } from '../schemas.ts';

const settingsSchema = z.object({
  voice: z.string().max(200).optional(),
  reference_id: z.string().max(255).optional(),
  format: z.enum(AUDIO_FORMATS).optional(),
  sample_rate: z.number().int().min(8000).max(192_000).optional(),
  speed: speedSchema.optional(),
  /** The voice model (an id or alias of a models file's `tts:` section). */
  model: z.string().max(200).optional(),
});

const clientMessage = z.discriminatedUnion('type', [
  settingsSchema.extend({ type: z.literal('config') }),
  z.object({ type: z.literal('text'), text: z.string() }),
  z.object({ type: z.literal('flush') }),
  z.object({ type: z.literal('cancel') }),
]);

type Settings = z.infer<typeof settingsSchema>;

export const TTS_WS_DOC = {
  summary: 'Streaming text-to-speech (WebSocket)',
  tags: ['text-to-speech'],
  description: `Send text as it is written; receive speech as soon as each sentence is complete.

**Client → server** (JSON text frames):
- \`{"type":"config","voice":"en-us","format":"pcm","sample_rate":24000,"speed":1,"reference_id":"..."}\` — optional, applies from the next utterance. Also settable as query parameters (\`?voice=&format=&sample_rate=&speed=\`). \`model\` (query or config) picks a voice model of the models file's \`tts:\` section by id or alias; an unknown one is an \`error\` event \`model_not_found\` (in the query: then close; in config: the previous model stays).
- \`{"type":"text","text":"Hello wor"}\` — append text; each sentence is synthesized once complete.
- \`{"type":"flush"}\` — speak what is left and end the utterance.
- \`{"type":"cancel"}\` — drop buffered text and stop the utterance in flight.

**Server → client**:
- \`{"type":"ready","format","sample_rate","voice","request_id"}\` on connect.
- \`{"type":"start","utterance_id","format","sample_rate","engine"}\` before an utterance's first audio.
- Binary frames: the audio, one continuous stream per utterance (\`pcm\`: raw 16-bit little-endian mono at \`sample_rate\`; \`opus\`: Ogg Opus pages at 48 kHz; \`wav\` starts with a header).
- \`{"type":"end","utterance_id","duration_seconds","engine","text","truncated"}\` after the utterance's last audio (always after its \`start\`: a flush with no text gets a \`start\` and an \`end\` with \`duration_seconds: 0\` and no audio between); \`truncated: true\` when MAX_TTS_AUDIO_SECONDS cut it short (text sent for it afterwards, until its flush, is dropped).
- \`{"type":"cancelled","utterance_id"}\` after a cancel.
- \`{"type":"error","error":{message,type,param,code},"request_id"}\` — a bad message or a failed synthesis; the socket stays open. An utterance holds at most MAX_TTS_TEXT_CHARS characters of text: a \`text\` message past that gets \`text_too_long\` and is not added. Messages over WS_MAX_MESSAGE_BYTES close it with 1009.

\`speed\` (0.25-4): the embedded voice speaks at that rate itself; fish-speech's audio gets its tempo changed by ffmpeg (without ffmpeg it keeps its own speed). Engines: TTS_BACKEND (fish-speech, then the embedded voice).`,
};

interface Utterance {
  id: number;
  sentences: AsyncQueue<string>;
  controller: AbortController;
  text: string[];
}

class TtsSocket {
  private settings: Required<Pick<Settings, 'format' | 'sample_rate'>> & Settings;
  private readonly splitter = new SentenceSplitter();
  private current: Utterance | undefined;
  private tail: Promise<void> = Promise.resolve();
  private nextId = 1;
  private readonly active = new Set<Utterance>();
  private readonly out: JsonSocket;
  private gate: SocketGate | undefined;
  /** Characters of `text` received for the utterance being written (since the last flush/cancel). */
  private received = 0;

  constructor(
    private readonly socket: WebSocket,
    private readonly request: FastifyRequest,
    private readonly synthesis: SynthesisService,
    defaults: { format: AudioFormat; sampleRate: number },
    query: Settings,
  ) {
    this.settings = { format: defaults.format, sample_rate: defaults.sampleRate, ...query };
    this.out = new JsonSocket(socket, request, '/ws/tts');
  }

  open(drain: SocketDrain): void {
    this.gate = drain.register(this.out, () => this.finish());
    this.sendJson({ type: 'ready', format: this.settings.format, sample_rate: this.outputRate(), voice: this.settings.voice ?? null, request_id: this.request.id });
    this.socket.on('message', (data, isBinary) => this.onMessage(data as Buffer, isBinary));
    this.socket.on('close', () => {
      for (const u of this.active) this.stop(u, 'socket closed');
    });
  }

  /** On shutdown: speaks the text already received (as a flush would), then resolves. */
  private async finish(): Promise<void> {
    if (this.current || this.splitter.pending.trim()) this.flush();
    await settled(() => this.tail);
  }

  /** Aborts an utterance's work and ends its sentence queue (it may be waiting for more text). */
  private stop(u: Utterance, why: string): void {
    u.controller.abort(new DOMException(why, 'AbortError'));
    u.sentences.end();
  }

  private outputRate(): number {
    return this.settings.format === 'opus' ? 48_000 : this.settings.sample_rate;
  }

  private sendJson(message: object): void {
    this.out.send(message);
  }

  private sendError(error: unknown): void {
    this.out.error(error);
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (this.gate?.accepting() === false) return;
    if (isBinary) return this.sendError(badMessage('Binary messages are not accepted on /ws/tts; send JSON text frames.'));
    const parsed = this.out.parse(data, clientMessage, '{"type":"text","text":"Hello."}');
    if (!parsed) return;
    switch (parsed.type) {
      case 'config': {
        const { type: _type, ...settings } = parsed;
        if (settings.model !== undefined) {
          try {
            this.synthesis.modelId(settings.model);
          } catch (error) {
            return this.sendError(error); // unknown: the error event, settings unchanged
          }
        }
        this.settings = { ...this.settings, ...settings };
        return;
      }
      case 'text': {
        // MAX_TTS_TEXT_CHARS holds per utterance: a message that would pass it is refused whole
        // (the utterance keeps what it had; flush or cancel starts the next one)
        const limit = this.synthesis.maxTextChars;
        if (this.received + parsed.text.length > limit) {
          return this.sendError(
            ApiError.badRequest(
              `This utterance would hold ${this.received + parsed.text.length} characters; the limit is ${limit} (MAX_TTS_TEXT_CHARS). The message was not added: send flush (or cancel) to start a new utterance.`,
              'text',
              'text_too_long',
            ),
          );
        }
        this.received += parsed.text.length;
        for (const sentence of this.splitter.push(parsed.text)) this.utterance().sentences.push(sentence);
        return;
      }
      case 'flush':
        return this.flush();
      case 'cancel': {
        this.splitter.flush();
        this.received = 0;
        const u = this.current;
        this.current = undefined;
        for (const open of this.active) this.stop(open, 'cancelled by the client');
        this.sendJson({ type: 'cancelled', utterance_id: u?.id ?? null });
        return;
      }
    }
  }

  /** Speaks what is left of the text and ends the utterance. */
  private flush(): void {
    for (const sentence of this.splitter.flush()) this.utterance().sentences.push(sentence);
    this.utterance().sentences.end();
    this.current = undefined;
    this.received = 0;
  }

  /** The utterance collecting sentences now; started (queued behind the previous one) on first use. */
  private utterance(): Utterance {
    if (this.current) return this.current;
    const u: Utterance = { id: this.nextId++, sentences: new AsyncQueue(), controller: new AbortController(), text: [] };
    this.current = u;
    this.active.add(u);
    const settings = { ...this.settings };
    this.tail = this.tail.then(() => this.speak(u, settings)).finally(() => this.active.delete(u));
    return u;
  }

  private async speak(u: Utterance, settings: Settings & { format: AudioFormat; sample_rate: number }): Promise<void> {
    const signal = u.controller.signal;
    if (signal.aborted) return;
    const encoded = this.synthesis.speakSentences(
      (async function* () {
        for await (const sentence of u.sentences) {
          u.text.push(sentence);
          yield sentence;
        }
      })(),
      { voice: settings.voice, referenceId: settings.reference_id, speed: settings.speed, format: settings.format, sampleRate: settings.sample_rate, model: settings.model },
      signal,
    );
    let started = false;
    const start = () => {
      if (started) return;
      started = true;
      this.sendJson({ type: 'start', utterance_id: u.id, format: settings.format, sample_rate: encoded.sampleRate, engine: encoded.engine() });
    };
    try {
      for await (const bytes of encoded.bytes) {
        start();
        await this.out.sendBinary(bytes);
      }
      if (signal.aborted) return;
      // an utterance without audio (an empty flush, text with nothing to say) still gets its
      // start before its end: clients pair them, and one waiting for `end` after a flush gets it
      start();
      const truncated = encoded.truncated();
      this.sendJson({ type: 'end', utterance_id: u.id, duration_seconds: Math.round(encoded.durationSeconds() * 1000) / 1000, engine: encoded.engine(), text: u.text.join(' '), truncated });
      // cut at MAX_TTS_AUDIO_SECONDS: the rest of this utterance's text, until its flush, is dropped
      if (truncated) for await (const rest of u.sentences) void rest;
    } catch (error) {
      if (signal.aborted || this.socket.readyState !== this.socket.OPEN) return;
      this.sendError(error);
      u.sentences.end();
      for await (const rest of u.sentences) void rest; // the utterance is over: drop what was queued for it
    }
  }
}

export const ttsSocketRoutes: FastifyPluginAsync<{ synthesis: SynthesisService; wsDocs: WsDocs; drain: SocketDrain; defaults: { format: AudioFormat; sampleRate: number } }> = async (app, { synthesis, wsDocs, drain, defaults }) => {
  wsDocs.set('/ws/tts', TTS_WS_DOC);
  app.get('/ws/tts', { websocket: true }, (socket, request) => {
    const query = parseQuery(socket, request, settingsSchema, coerceQuery(request.query as Record<string, string>), 'invalid_value');
    if (!query) return;
    // the named voice model must exist (404 model_not_found) and serve, before any text is taken
    if (refuseUnavailable(socket, request, () => synthesis.assertAvailable(query.model))) return;
    new TtsSocket(socket, request, synthesis, defaults, query).open(drain);
  });
};

function coerceQuery(query: Record<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of ['voice', 'reference_id', 'format', 'model'] as const) if (query[key] !== undefined) out[key] = query[key];
  for (const key of ['sample_rate', 'speed'] as const) if (query[key] !== undefined) out[key] = Number(query[key]);
  return out;
}
