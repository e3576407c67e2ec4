/**
 * WS /ws/stt: stream microphone audio, get transcripts per turn. The VAD cuts the stream into
 * turns; each finished turn is transcribed (in order) with the same TranscriptionService as the
 * REST routes; while someone speaks, partial transcripts of the turn so far arrive every
 * STT_PARTIAL_INTERVAL_MS (skipped while one is still running, so they never pile up).
 */
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { Config } from '../../config.ts';
import type { TranscriptionService } from '../../services/transcription.ts';
import { segmentView } from '../transcript-formats.ts';
import type { WsDocs } from '../ws-docs.ts';
import { Microphone, MicrophoneSlot, partialTranscriber } from './microphone.ts';
import { JsonSocket, parseQuery, refuseUnavailable } from './socket.ts';
import { settled, type SocketDrain } from './shutdown.ts';
import { keepAliveSchema, wsLanguageSchema } from '../schemas.ts';

/** The speech-to-text model of the socket's turns: an id or alias of GET /v1/models. */
const wsModel = z.string().max(256).optional();

export const sttControl = z.discriminatedUnion('type', [
  z.object({ type: z.literal('config'), language: wsLanguageSchema.optional(), model: wsModel }),
  z.object({ type: z.literal('commit') }),
]);

export const audioQuery = z.object({
  sample_rate: z.coerce.number().int().min(8000).max(192_000).optional().default(16000),
  language: wsLanguageSchema.optional(),
});

const sttQuery = audioQuery.extend({ model: wsModel, keep_alive: keepAliveSchema });

export const STT_WS_DOC = {
  summary: 'Streaming speech-to-text with voice activity detection (WebSocket)',
  tags: ['speech-to-text'],
  description: `Stream microphone audio; receive a transcript per turn.

**Client → server**: binary frames of 16-bit little-endian mono PCM at \`?sample_rate=\` (default 16000; other rates are resampled; any frame size). Query: \`sample_rate\`, \`language\`, \`model\` (an id or alias of GET /v1/models; \`whisper-1\` picks the default; with a models file an unknown name gets an \`error\` event \`model_not_found\`, then close, before any audio is processed) and \`keep_alive\` (as on the REST routes). JSON text frames: \`{"type":"config","language":"en","model":"…"}\` (an unknown \`model\` there: an \`error\` event, the previous model stays), \`{"type":"commit"}\` (end the current turn now).

**Server → client** (JSON): \`{"type":"ready","sample_rate","request_id"}\`; \`{"type":"speech_started","audio_ms"}\` and \`{"type":"speech_stopped","audio_ms"}\` from the VAD (WebRTC VAD; a turn ends after VAD_SILENCE_MS of silence); \`{"type":"transcript.partial","text"}\` while speaking (every STT_PARTIAL_INTERVAL_MS); \`{"type":"transcript.final","turn_id","text","language","start_ms","end_ms","segments","engine","model"}\` per turn, in order; \`{"type":"error","error":{...}}\`. Times are milliseconds of the audio stream. Messages over WS_MAX_MESSAGE_BYTES close the socket with 1009.`,
};

export const sttSocketRoutes: FastifyPluginAsync<{ transcription: TranscriptionService; config: Config; wsDocs: WsDocs; drain: SocketDrain }> = async (app, { transcription, config, wsDocs, drain }) => {
  wsDocs.set('/ws/stt', STT_WS_DOC);
  app.get('/ws/stt', { websocket: true }, async (socket, request) => {
    const query = parseQuery(socket, request, sttQuery, request.query);
    if (!query) return;
    // the named model must exist (404 model_not_found) and serve, before any audio is taken
    if (refuseUnavailable(socket, request, () => transcription.assertAvailable(query.model))) return;
    const out = new JsonSocket(socket, request, '/ws/stt');
    let language = query.language?.toLowerCase();
    let model = query.model;
    const controller = new AbortController();
    let finals: Promise<void> = Promise.resolve();
    let turnId = 0;
    const slot = new MicrophoneSlot();
    // on shutdown the turn in progress is ended and transcribed before the socket closes
    const gate = drain.register(out, async () => {
      slot.commit();
      await settled(() => finals);
    });
    // frames that arrive while the VAD loads are kept, not lost
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      if (!gate.accepting()) return;
      if (isBinary) return slot.push(data);
      const message = out.parse(data, sttControl, '{"type":"commit"}');
      if (message?.type === 'config') {
        language = message.language?.toLowerCase() ?? language;
        if (message.model !== undefined) {
          try {
            transcription.modelId(message.model); // unknown: the error event, the previous model stays
            model = message.model;
          } catch (error) {
            out.error(error);
          }
        }
      } else if (message?.type === 'commit') slot.commit();
    });
    socket.on('close', () => {
      controller.abort(new DOMException('socket closed', 'AbortError'));
      slot.close();
    });

    const mic = await Microphone.open(config, query.sample_rate, {
      onTurnEvent: (event) => {
        if (event.type === 'speech_started') return out.send({ type: 'speech_started', audio_ms: event.atMs });
        if (event.type === 'speech_discarded') return out.send({ type: 'speech_stopped', audio_ms: event.atMs, discarded: true });
        out.send({ type: 'speech_stopped', audio_ms: event.atMs });
        const id = ++turnId;
        const duration = event.audio.length / 16000;
        finals = finals.then(async () => {
          try {
            const result = await transcription.transcribe({ audio: event.audio, language, task: 'transcribe', wordTimestamps: false }, controller.signal, undefined, model, query.keep_alive);
            const { transcript, engine } = result;
            out.send({ type: 'transcript.final', turn_id: id, text: transcript.text.trim(), language: transcript.language, start_ms: event.startMs, end_ms: event.endMs, duration: +duration.toFixed(3), segments: transcript.segments.map((s) => segmentView(s, event.startMs)), engine, model: result.model });
          } catch (error) {
            if (!controller.signal.aborted) out.error(error);
          }
        });
      },
      onPartial: partialTranscriber(transcription, controller.signal, () => ({ language, model }), (text) => out.send({ type: 'transcript.partial', turn_id: turnId + 1, text })),
    });
    slot.attach(mic);
    if (socket.readyState !== socket.OPEN) return mic.close();
    out.send({ type: 'ready', sample_rate: query.sample_rate, request_id: request.id });
    slot.replay();
  });
};
