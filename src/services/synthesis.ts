/**
 * Text-to-speech, shared by /v1/text-to-speech, the OpenAI speech route, /ws/tts and the dialogue
 * pipeline: input limits (text length, reference audio decoded and checked before any upstream
 * call), admission (TTS_PARALLEL running, TTS_QUEUE_SIZE waiting), the engine fallback chain
 * (TTS_BACKEND order; the next engine answers when one is unavailable or fails before its first
 * audio), the output duration cap, encoding (audio/encode.ts) and metrics.
 *
 * `start` does everything that can fail with a clean HTTP status before the first byte — the
 * first audio chunk is already synthesized when it returns — then hands back the byte stream.
 */
import type { Config } from '../config.ts';
import { decodeToWhisperInput } from '../audio/decode.ts';
import { assertEncodable, encodeSpeech } from '../audio/encode.ts';
import type { Ffmpeg } from '../audio/ffmpeg.ts';
import type { AudioFormat } from '../audio/formats.ts';
import { finalizeWav } from '../audio/wav.ts';
import { finalizeFlac } from '../audio/flac.ts';
import { createStreamResampler } from '../audio/resample.ts';
import type { EngineRegistry } from '../engines/registry.ts';
import type { PcmChunk, ReferenceAudio, SynthesisRequest, TtsEngine, Voice } from '../engines/tts/types.ts';
import { ApiError, isRetryable } from '../errors.ts';
import type { Metrics } from '../observability/metrics.ts';
import { outcomeOf } from '../observability/metrics.ts';
import { Admission } from '../util/admission.ts';

export interface SpeechRequest extends SynthesisRequest {
  format: AudioFormat;
  /** Output rate (Hz); DEFAULT_AUDIO_SAMPLE_RATE when absent. */
  sampleRate?: number;
  /** 0.25–4.0; engines that cannot speak at that rate get a tempo change afterwards. */
  speed?: number;
}

export interface Speech {
  engine: string;
  format: AudioFormat;
  contentType: string;
  sampleRate: number;
  /** The encoded audio; the first chunk's synthesis is already done. Iterate once. */
  bytes: AsyncIterable<Buffer>;
  /** Seconds of audio produced so far (final once `bytes` is exhausted). */
  durationSeconds(): number;
  /** Whether MAX_TTS_AUDIO_SECONDS cut the speech short. */
  truncated(): boolean;
  /** Milliseconds from `start` to the first synthesized chunk. */
  firstAudioMs: number;
}

/** A request field name per surface, so 400s name the field the client sent. */
export interface FieldNames {
  text: string;
  references?: string;
}

export interface PcmSpeech {
  engine: string;
  /** Speed change still to apply (1 when the engine spoke at the requested speed itself). */
  tempo: number;
  /** Mono PCM at the engine's rate; the first chunk is already synthesized. Iterate once. */
  chunks: AsyncIterable<PcmChunk>;
  firstAudioMs: number;
  /** Seconds of speech (after the tempo change) produced so far. */
  seconds(): number;
  truncated(): boolean;
}

interface Opened {
  engine: TtsEngine;
  tempo: number;
  iterator: AsyncIterator<PcmChunk>;
  first: IteratorResult<PcmChunk>;
  started: number;
}

export interface SentenceSettings {
  /** The voice model (undefined: the default). */
  model?: string;
  voice?: string;
  referenceId?: string;
  speed?: number;
  format: AudioFormat;
  sampleRate?: number;
}

export interface SpokenSentences {
  bytes: AsyncIterable<Buffer>;
  format: AudioFormat;
  contentType: string;
  sampleRate: number;
  /** The engine of the first sentence (null before it started). */
  engine(): string | null;
  /** The sentences whose synthesis has started, in order. */
  spoken(): string[];
  durationSeconds(): number;
  /** Whether MAX_TTS_AUDIO_SECONDS (over the whole stream) cut the speech short. */
  truncated(): boolean;
}

export class SynthesisService {
  private readonly admission: Admission;
  private readonly audioSeconds;
  private readonly rtf;
  private readonly firstAudio;

  constructor(
    private readonly config: Config,
    private readonly engines: EngineRegistry,
    private readonly metrics: Metrics,
    readonly ffmpeg: Ffmpeg,
  ) {
    const inFlight = metrics.gauge('tts_requests_in_flight', 'Syntheses admitted and not finished.');
    this.admission = new Admission(config.TTS_PARALLEL, config.TTS_QUEUE_SIZE, 'text-to-speech', (running) => inFlight.set(running));
    this.audioSeconds = metrics.counter('tts_audio_seconds_total', 'Seconds of speech synthesized.', ['engine']);
    this.rtf = metrics.histogram('tts_real_time_factor', 'Synthesis time divided by audio duration (lower is faster).', ['engine'], [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5]);
    // converters for the usual rate pairs (eSpeak 22.05 kHz, fish-speech 44.1 kHz → the default
    // rate) are created now, off the request path (creating one costs ~10-40 ms)
    for (const from of [22_050, 44_100]) void createStreamResampler(from, config.DEFAULT_AUDIO_SAMPLE_RATE).then((r) => r.close());
    this.firstAudio = metrics.histogram('tts_time_to_first_audio_seconds', 'Time from admission to the first synthesized audio.', ['engine'], [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]);
  }

  /** Throws the 503 envelope before any work when no TTS engine (of the named voice model) is ready; 404 for an unknown model (models file with voices). */
  assertAvailable(model?: string): void {
    this.engines.ready('tts', model);
  }

  /** The id of the voice model a name picks; 404 `model_not_found` for an unknown one (models file with voices). */
  modelId(model?: string): string {
    return this.engines.model('tts', model).id;
  }

  /** MAX_TTS_TEXT_CHARS: the longest text one synthesis (one /ws/tts utterance) may have. */
  get maxTextChars(): number {
    return this.config.MAX_TTS_TEXT_CHARS;
  }

  /** Text checks shared by every surface (empty → 400, too long → 400 naming the limit). */
  checkText(text: string, param: string): string {
    if (text.trim().length === 0) throw ApiError.badRequest(`${param} is empty: there is nothing to say.`, param, 'empty_text');
    if (text.length > this.config.MAX_TTS_TEXT_CHARS) {
      throw ApiError.badRequest(`${param} is ${text.length} characters long; the limit is ${this.config.MAX_TTS_TEXT_CHARS} (MAX_TTS_TEXT_CHARS).`, param, 'text_too_long');
    }
    return text;
  }

  /** Decodes every reference clip (size, format, duration) so a bad one fails here, not upstream. */
  async checkReferences(references: ReferenceAudio[] | undefined, param = 'references'): Promise<void> {
    for (const [i, reference] of (references ?? []).entries()) await this.checkReference(reference, `${param}[${i}].audio`, `${param}[${i}].text`);
  }

  private async checkReference(reference: ReferenceAudio, audioParam: string, textParam: string): Promise<void> {
    if (reference.audio.length > this.config.MAX_REFERENCE_AUDIO_BYTES) {
      throw new ApiError(413, 'invalid_request_error', `${audioParam} is ${reference.audio.length} bytes; the limit is ${this.config.MAX_REFERENCE_AUDIO_BYTES} (MAX_REFERENCE_AUDIO_BYTES).`, { param: audioParam, code: 'reference_too_large' });
    }
    await decodeToWhisperInput(reference.audio, { maxSeconds: this.config.MAX_REFERENCE_AUDIO_SECONDS, setting: 'MAX_REFERENCE_AUDIO_SECONDS' }, audioParam);
    if (reference.text.trim().length === 0) throw ApiError.badRequest(`${textParam} must be the transcript of the reference audio.`, textParam, 'invalid_value');
  }

  /**
   * Stores a cloned voice (reference clip + its transcript) with the engine that keeps them
   * (fish-speech); the clip is checked like any reference first. 501 when no such engine is
   * configured, 503 while it is down.
   */
  async addVoice(voice: { id: string; audio: Buffer; text: string }, signal: AbortSignal): Promise<string> {
    await this.checkReference(voice, 'file', 'text');
    const engine = this.voiceKeeper();
    await engine.addVoice!(voice, signal);
    return engine.id;
  }

  async deleteVoice(id: string, signal: AbortSignal): Promise<string> {
    const engine = this.voiceKeeper();
    await engine.deleteVoice!(id, signal);
    return engine.id;
  }

  private voiceKeeper(): TtsEngine {
    const engine = this.engines.configured('tts').find((e) => e.addVoice && e.deleteVoice);
    if (!engine) {
      throw new ApiError(501, 'server_error', 'Cloned voices are kept by fish-speech (OpenAudio): add openaudio to TTS_BACKEND and point OPENAUDIO_API_BASE at its server.', { code: 'voice_cloning_unavailable' });
    }
    const state = engine.state();
    if (state.status !== 'ready') throw ApiError.unavailable(`${engine.id} is not available (${state.detail ?? state.status}).`, 'engine_unavailable');
    return engine;
  }

  /** Voices of every ready engine, in chain order. */
  async voices(): Promise<Voice[]> {
    const chain = this.engines.ready('tts');
    return (await Promise.all(chain.map((e) => e.voices()))).flat();
  }

  /**
   * Synthesizes `request` and returns once the first audio chunk exists, as mono PCM at the
   * engine's rate (the dialogue pipeline and /ws/tts feed several of these into one encoder).
   * `tempo` is the speed change still to apply (1 when the engine spoke at the asked speed).
   */
  async startPcm(request: SynthesisRequest & { format?: AudioFormat }, signal: AbortSignal, fields: FieldNames = { text: 'text' }, model?: string): Promise<PcmSpeech> {
    this.checkText(request.text, fields.text);
    await this.checkReferences(request.references, fields.references);
    const speed = request.speed ?? 1;
    // `model`: a voice model of the models file by id or alias (without voice models any name is TTS_BACKEND's chain)
    const chain = this.engines.ready('tts', model);
    // fail before queueing when even the first engine could not deliver this format/speed
    if (request.format) assertEncodable(request.format, chain[0]!.speaksAt(speed) ? 1 : speed, this.ffmpeg);
    const release = await this.admission.acquire(signal);
    const startedAt = performance.now();
    try {
      const opened = await this.open(chain, request, speed, signal);
      return this.track(opened, release, startedAt, signal);
    } catch (error) {
      release();
      throw error;
    }
  }

  /** Synthesizes and encodes `request` (see `startPcm`). */
  async start(request: SpeechRequest, signal: AbortSignal, fields?: FieldNames, model?: string): Promise<Speech> {
    const pcm = await this.startPcm(request, signal, fields, model);
    const encoded = encodeSpeech(pcm.chunks, { format: request.format, sampleRate: request.sampleRate ?? this.config.DEFAULT_AUDIO_SAMPLE_RATE, tempo: pcm.tempo, ffmpeg: this.ffmpeg }, signal);
    return {
      engine: pcm.engine,
      format: request.format,
      contentType: encoded.contentType,
      sampleRate: encoded.sampleRate,
      bytes: encoded.bytes,
      durationSeconds: () => encoded.samples() / encoded.sampleRate / pcm.tempo,
      truncated: pcm.truncated,
      firstAudioMs: pcm.firstAudioMs,
    };
  }

  /** Tries each engine until one yields its first chunk. */
  private async open(chain: TtsEngine[], request: SynthesisRequest & { format?: AudioFormat }, speed: number, signal: AbortSignal): Promise<Opened> {
    let lastError: unknown;
    for (const engine of chain) {
      const native = engine.speaksAt(speed);
      const tempo = native ? 1 : speed;
      const started = performance.now();
      try {
        if (request.format) assertEncodable(request.format, tempo, this.ffmpeg);
        const iterator = engine.synthesize({ ...request, speed: native ? speed : undefined }, signal)[Symbol.asyncIterator]();
        const first = await iterator.next();
        return { engine, tempo, iterator, first, started };
      } catch (error) {
        this.metrics.dependencyDuration.observe({ dependency: engine.id, operation: 'synthesize', outcome: outcomeOf(error) }, (performance.now() - started) / 1000);
        if (signal.aborted || !isRetryable(error)) throw error;
        lastError = error;
      }
    }
    throw lastError;
  }

  /** The PCM stream with the duration cap, admission release and metrics, each exactly once. */
  private track(opened: Opened, release: () => void, startedAt: number, signal: AbortSignal): PcmSpeech {
    const { engine, tempo, iterator } = opened;
    const firstAudioMs = performance.now() - startedAt;
    this.firstAudio.observe({ engine: engine.id }, firstAudioMs / 1000);
    const maxSeconds = this.config.MAX_TTS_AUDIO_SECONDS * tempo; // the cap applies to what the client hears
    let sourceSeconds = 0;
    let cut = false;
    let done = false;
    let consuming = false;
    const finish = (outcome: string) => {
      if (done) return;
      done = true;
      // the signal outlives this speech (one request speaks many sentences): leave no listener on it
      signal.removeEventListener('abort', onAbort);
      release();
      const elapsed = (performance.now() - opened.started) / 1000;
      this.metrics.dependencyDuration.observe({ dependency: engine.id, operation: 'synthesize', outcome }, elapsed);
      if (outcome === 'success' && sourceSeconds > 0) {
        this.audioSeconds.inc({ engine: engine.id }, sourceSeconds / tempo);
        this.rtf.observe({ engine: engine.id }, elapsed / (sourceSeconds / tempo));
      }
    };
    // a client that leaves before reading anything still frees the slot and stops the engine
    const onAbort = () => {
      if (!consuming) {
        void iterator.return?.();
        finish('aborted');
      }
    };
    signal.addEventListener('abort', onAbort, { once: true });

    async function* chunks(): AsyncGenerator<PcmChunk> {
      consuming = true;
      let next = opened.first;
      try {
        while (!next.done) {
          const chunk = next.value;
          const room = Math.floor((maxSeconds - sourceSeconds) * chunk.sampleRate);
          if (chunk.samples.length >= room) {
            if (room > 0) yield { samples: chunk.samples.subarray(0, room), sampleRate: chunk.sampleRate };
            sourceSeconds = maxSeconds;
            cut = true;
            break;
          }
          sourceSeconds += chunk.samples.length / chunk.sampleRate;
          yield chunk;
          next = await iterator.next();
        }
        finish('success');
      } catch (error) {
        finish(outcomeOf(error));
        throw error;
      } finally {
        if (!next.done) await iterator.return?.();
        finish('aborted');
      }
    }

    return { engine: engine.id, tempo, chunks: chunks(), firstAudioMs, seconds: () => sourceSeconds / tempo, truncated: () => cut };
  }

  /**
   * Speaks sentences as they arrive, in order, as one continuous encoded stream (one encoder for
   * all of them, so an Ogg/MP3 stream stays one stream). Each sentence is synthesized when the
   * previous one has been delivered; the first starts as soon as it arrives. Used by /ws/tts and
   * the dialogue pipeline. `speed` applies where the engine can speak at it (no tempo change here).
   * MAX_TTS_AUDIO_SECONDS bounds the whole stream, not only each sentence: past it the speech
   * stops, no further sentence is read, and `truncated()` says so.
   */
  speakSentences(sentences: AsyncIterable<string>, settings: SentenceSettings, signal: AbortSignal): SpokenSentences {
    let engine: string | null = null;
    const spoken: string[] = [];
    const startPcm = this.startPcm.bind(this);
    // One tempo for the whole stream: when the first engine cannot speak at this speed itself
    // (fish-speech), every sentence is made at normal speed and the encoder changes the tempo.
    const speed = settings.speed ?? 1;
    let tempo = 1;
    try {
      tempo = this.engines.ready('tts', settings.model)[0]!.speaksAt(speed) ? 1 : speed;
      assertEncodable(settings.format, tempo, this.ffmpeg);
    } catch {
      tempo = 1; // no engine ready (the first sentence reports it), or no ffmpeg to change the tempo: the voice's own speed
    }
    const maxSeconds = this.config.MAX_TTS_AUDIO_SECONDS * tempo; // the cap applies to what the client hears
    let produced = 0;
    let cut = false;
    async function* pcm(): AsyncGenerator<PcmChunk> {
      for await (const sentence of sentences) {
        const speech = await startPcm({ text: sentence, voice: settings.voice, referenceId: settings.referenceId, speed: tempo === 1 ? speed : 1, format: settings.format }, signal, undefined, settings.model);
        engine ??= speech.engine;
        spoken.push(sentence);
        for await (const chunk of speech.chunks) {
          const room = Math.floor((maxSeconds - produced) * chunk.sampleRate);
          if (chunk.samples.length > room) {
            if (room > 0) yield { samples: chunk.samples.subarray(0, room), sampleRate: chunk.sampleRate };
            produced = maxSeconds;
            cut = true;
            return; // leaving the loops stops this sentence's synthesis and reads no further sentence
          }
          produced += chunk.samples.length / chunk.sampleRate;
          yield chunk;
        }
        if (speech.truncated()) cut = true;
      }
    }
    const encoded = encodeSpeech(pcm(), { format: settings.format, sampleRate: settings.sampleRate ?? this.config.DEFAULT_AUDIO_SAMPLE_RATE, tempo, ffmpeg: this.ffmpeg }, signal);
    return {
      bytes: encoded.bytes,
      format: settings.format,
      contentType: encoded.contentType,
      sampleRate: encoded.sampleRate,
      engine: () => engine,
      spoken: () => spoken,
      durationSeconds: () => encoded.samples() / encoded.sampleRate / tempo,
      truncated: () => cut,
    };
  }

  /** The whole speech in one buffer (for JSON answers); wav gets its real sizes, flac its length. */
  async collect(speech: Speech): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const part of speech.bytes) parts.push(part);
    const all = Buffer.concat(parts);
    if (speech.format === 'flac') return finalizeFlac(all);
    return speech.format === 'wav' ? finalizeWav(all) : all;
  }
}
