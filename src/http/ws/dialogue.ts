/**
 * WS /ws/dialogue: full-duplex voice dialogue. The client streams microphone audio (PCM16); the
 * VAD finds the end of each turn; the turn runs through the same DialogueService as
 * /v1/dialogue; the reply streams back as text deltas and binary audio. Barge-in: when the user
 * starts speaking while a reply is being generated or played, the reply is cancelled at once
 * (LLM and TTS stop), the client is told (`reply.cancelled`) so it stops playback, and history
 * keeps only what was sent. Protocol: the WS_DOC below and docs/websockets.md.
 */
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { AUDIO_FORMATS, type AudioFormat } from '../../audio/formats.ts';
import type { Config } from '../../config.ts';
import type { DialogueService, DialogueTurnInput } from '../../dialogue/pipeline.ts';
import type { TranscriptionService } from '../../services/transcription.ts';
import { resultView } from '../dialogue-view.ts';
import { segmentView } from '../transcript-formats.ts';
import { tenantOf } from '../../tenancy.ts';
import type { WsDocs } from '../ws-docs.ts';
import { Microphone, MicrophoneSlot, partialTranscriber } from './microphone.ts';
import { JsonSocket, parseQuery, refuseUnavailable } from './socket.ts';
import { settled, type SocketDrain } from './shutdown.ts';
import { wsLanguageSchema } from '../schemas.ts';

const settings = z.object({
  voice: z.string().max(200).optional(),
  format: z.enum(AUDIO_FORMATS).optional(),
  output_sample_rate: z.coerce.number().int().min(8000).max(192_000).optional(),
  language: wsLanguageSchema.optional(),
  response_modalities: z.array(z.enum(['text', 'audio'])).min(1).optional(),
  /** The text and speech-to-text models of the turns (ids or aliases of GET /v1/models). */
  model: z.string().max(256).optional(),
  stt_model: z.string().max(256).optional(),
});

const query = settings.extend({
  sample_rate: z.coerce.number().int().min(8000).max(192_000).optional().default(16000),
  session_id: z.string().max(128).optional(),
  response_modalities: z
    .string()
    .regex(/^(text|audio)(,(text|audio))*$/)
    .transform((v) => v.split(',') as ('text' | 'audio')[])
    .optional(),
});

const control = z.discriminatedUnion('type', [
  settings.extend({ type: z.literal('config') }),
  z.object({ type: z.literal('text'), text: z.string().min(1).max(100_000) }),
  z.object({ type: z.literal('commit') }),
  z.object({ type: z.literal('cancel') }),
]);

export const DIALOGUE_WS_DOC = {
  summary: 'Full-duplex voice dialogue with barge-in (WebSocket)',
  tags: ['dialogue'],
  description: `Speak; hear the reply while it is being written; interrupt it by speaking.

Query: \`sample_rate\` of the microphone audio (default 16000), \`session_id\` (continue a conversation — with API keys on, one of this key's; generated when absent), \`voice\`, \`format\` of the reply audio (default \`pcm\`), \`output_sample_rate\` (default DEFAULT_AUDIO_SAMPLE_RATE), \`language\`, \`response_modalities\` (\`text,audio\`), \`model\` and \`stt_model\` (ids or aliases of GET /v1/models; unknown: an \`error\` event \`model_not_found\`, then close; in a \`config\` message: the \`error\` event, the settings unchanged).

**Client → server**: binary frames of 16-bit little-endian mono PCM (the microphone, any frame size); JSON: \`{"type":"config",...}\` (as the query, from the next turn), \`{"type":"text","text":"..."}\` (a typed turn), \`{"type":"commit"}\` (end the spoken turn now), \`{"type":"cancel"}\` (stop the reply).

**Server → client** (JSON unless noted):
- \`ready\` \`{"session_id","sample_rate","format","output_sample_rate","request_id"}\`
- \`speech_started\` / \`speech_stopped\` \`{"audio_ms"}\` (the VAD; a turn ends after VAD_SILENCE_MS of silence)
- \`transcript.partial\` \`{"turn_id","text"}\` while speaking; \`transcript.final\` \`{"turn_id","text","language","start_ms","end_ms","segments"}\`
- \`reply.text.delta\` \`{"turn_id","text"}\`; \`reply.audio.start\` \`{"turn_id","format","sample_rate"}\` then **binary audio frames** (one continuous stream per reply)
- \`reply.done\` \`{"turn_id", ...the /v1/dialogue metadata: reply_text, timings, engines, usage, degraded, no_speech}\`
- \`reply.cancelled\` \`{"turn_id","reason":"barge_in"|"client"}\`: stop playback now; history keeps what was sent
- \`error\` \`{"turn_id"?, "error":{...}}\`

Barge-in also applies while the client is still playing a finished reply (the server estimates playback from the audio it sent). Use the browser's echo cancellation so the reply's own sound is not taken for the user's voice.`,
};

interface ActiveTurn {
  id: number;
  controller: AbortController;
  done: boolean;
  /** When the client should finish playing the audio sent so far (ms, performance.now()). */
  playsUntil: number;
}

export const dialogueSocketRoutes: FastifyPluginAsync<{ dialogue: DialogueService; transcription: TranscriptionService; config: Config; wsDocs: WsDocs; drain: SocketDrain }> = async (app, { dialogue, transcription, config, wsDocs, drain }) => {
  wsDocs.set('/ws/dialogue', DIALOGUE_WS_DOC);
  app.get('/ws/dialogue', { websocket: true }, async (socket, request) => {
    if (refuseUnavailable(socket, request, () => dialogue.assertAvailable())) return;
    const parsed = parseQuery(socket, request, query, request.query);
    if (!parsed) return;
    // models named in the query must exist (404 model_not_found), before the first turn
    if (refuseUnavailable(socket, request, () => dialogue.checkModels(parsed.model, parsed.stt_model))) return;
    if (parsed.model !== undefined && refuseUnavailable(socket, request, () => dialogue.assertAvailable(parsed.model))) return;
    const out = new JsonSocket(socket, request, '/ws/dialogue');
    const { sample_rate: inputRate, session_id: requestedSession, ...initial } = parsed;
    let current: z.infer<typeof settings> = initial;
    let sessionId: string;
    try {
      sessionId = dialogue.sessionIdFor(requestedSession);
    } catch (error) {
      out.error(error);
      socket.close(1008, 'invalid session id');
      return;
    }
    const closed = new AbortController();
    let turnCounter = 0;
    let active: ActiveTurn | undefined;
    let tail: Promise<void> = Promise.resolve();
    const slot = new MicrophoneSlot();
    const format = (): AudioFormat => current.format ?? 'pcm';

    const cancel = (reason: 'barge_in' | 'client') => {
      const turn = active;
      if (!turn) return;
      const playing = performance.now() < turn.playsUntil;
      if (turn.done && !playing) return;
      active = undefined;
      turn.controller.abort(new DOMException(reason, 'AbortError'));
      out.send({ type: 'reply.cancelled', turn_id: turn.id, reason });
    };

    /** Runs one turn (queued behind the previous, which a barge-in has already cancelled). */
    const runTurn = (input: Pick<DialogueTurnInput, 'audio' | 'text'>, transcriptTimes?: { startMs: number; endMs: number }) => {
      const turn: ActiveTurn = { id: ++turnCounter, controller: new AbortController(), done: false, playsUntil: 0 };
      const signal = AbortSignal.any([turn.controller.signal, closed.signal]);
      active = turn;
      const settingsNow = current;
      tail = tail.then(async () => {
        if (signal.aborted) return;
        try {
          const run = await dialogue.start(
            {
              ...input,
              sessionId,
              owner: tenantOf(request),
              language: settingsNow.language?.toLowerCase(),
              modalities: { text: true, audio: (settingsNow.response_modalities ?? ['text', 'audio']).includes('audio') },
              voice: settingsNow.voice,
              format: settingsNow.format ?? 'pcm',
              sampleRate: settingsNow.output_sample_rate,
              model: settingsNow.model,
              sttModel: settingsNow.stt_model,
            },
            signal,
          );
          let audioStarted = false;
          let sentSeconds = 0;
          let firstAudioAt = 0;
          for await (const event of run.events) {
            if (event.type === 'transcript') {
              out.send({ type: 'transcript.final', turn_id: turn.id, text: event.transcript.text.trim(), language: event.transcript.language, start_ms: transcriptTimes?.startMs ?? null, end_ms: transcriptTimes?.endMs ?? null, segments: event.transcript.segments.map((s) => segmentView(s, transcriptTimes?.startMs ?? 0)) });
            } else if (event.type === 'text.delta') out.send({ type: 'reply.text.delta', turn_id: turn.id, text: event.text });
            else if (event.type === 'audio.delta') {
              if (!audioStarted) {
                audioStarted = true;
                firstAudioAt = performance.now();
                out.send({ type: 'reply.audio.start', turn_id: turn.id, format: event.format, sample_rate: event.sample_rate });
              }
              if (event.format === 'pcm') sentSeconds += event.audio.length / 2 / event.sample_rate;
              turn.playsUntil = firstAudioAt + sentSeconds * 1000;
              await out.sendBinary(event.audio);
            } else {
              turn.done = true;
              if (event.result.audio) turn.playsUntil = firstAudioAt + event.result.audio.duration_seconds * 1000;
              out.send({ type: 'reply.done', turn_id: turn.id, ...resultView(event.result, false) });
            }
          }
        } catch (error) {
          if (!signal.aborted) out.error(error, { turn_id: turn.id });
        } finally {
          turn.done = true;
        }
      });
    };

    // on shutdown the turn in progress (or the speech being heard) is answered before the socket closes
    const gate = drain.register(out, async () => {
      slot.commit();
      await settled(() => tail);
    });
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      if (!gate.accepting()) return;
      if (isBinary) return slot.push(data);
      const message = out.parse(data, control, '{"type":"text","text":"Hello!"}');
      if (!message) return;
      if (message.type === 'config') {
        const { type: _type, ...rest } = message;
        try {
          dialogue.checkModels(rest.model ?? current.model, rest.stt_model ?? current.stt_model);
        } catch (error) {
          out.error(error); // an unknown model: the error event, the settings unchanged
          return;
        }
        current = { ...current, ...rest };
      } else if (message.type === 'text') {
        cancel('barge_in');
        runTurn({ text: message.text });
      } else if (message.type === 'commit') slot.commit();
      else cancel('client');
    });
    socket.on('close', () => {
      closed.abort(new DOMException('socket closed', 'AbortError'));
      slot.close();
    });

    const mic = await Microphone.open(config, inputRate, {
      onTurnEvent: (event) => {
        if (event.type === 'speech_started') {
          out.send({ type: 'speech_started', audio_ms: event.atMs });
          return cancel('barge_in'); // in the same tick as the detection

        }
        out.send({ type: 'speech_stopped', audio_ms: event.atMs, ...(event.type === 'speech_discarded' ? { discarded: true } : {}) });
        if (event.type === 'speech_stopped') {
          runTurn({ audio: { samples: event.audio, duration: event.audio.length / 16000, source: { container: 'pcm', bytes: event.audio.length * 2, sampleRate: inputRate, channels: 1 } } }, { startMs: event.startMs, endMs: event.endMs });
        }
      },
      onPartial: partialTranscriber(transcription, closed.signal, () => ({ language: current.language?.toLowerCase(), model: current.stt_model }), (text) => out.send({ type: 'transcript.partial', turn_id: turnCounter + 1, text })),
    });
    slot.attach(mic);
    if (socket.readyState !== socket.OPEN) return mic.close();
    out.send({ type: 'ready', session_id: sessionId, sample_rate: inputRate, format: format(), output_sample_rate: format() === 'opus' ? 48000 : (current.output_sample_rate ?? config.DEFAULT_AUDIO_SAMPLE_RATE), request_id: request.id });
    slot.replay();
  });
};
