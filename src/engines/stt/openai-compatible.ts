/**
 * The hosted STT: OpenAI's transcription API, or any OpenAI-compatible server (Speaches,
 * faster-whisper servers, LocalAI), through the official `openai` SDK — retries with backoff on
 * 429/5xx/connection errors (`maxRetries`), each attempt bounded (`timeoutMs`).
 * The audio goes up as 16 kHz mono 16-bit WAV. With `responseFormat: 'verbose_json'`
 * segments, confidences and word timestamps come back; `json`/`text` (what gpt-4o-*-transcribe
 * models support) give the text only, so segments are empty.
 */
import { toFile, type OpenAI } from 'openai';
import type { Logger } from 'pino';
import { encodeWavPcm16 } from '../../audio/wav.ts';
import { openAiClient, upstreamError, type OpenAiUpstreamOptions } from '../openai-errors.ts';
import { languageCode } from './languages.ts';
import type { EngineState } from '../types.ts';
import { STT_SAMPLE_RATE, type SttEngine, type SttEvent, type Transcript, type TranscriptionRequest } from './types.ts';

interface VerboseSegment {
  id: number;
  start: number;
  end: number;
  text: string;
  avg_logprob?: number;
  no_speech_prob?: number;
  tokens?: number[];
}

export interface OpenAiCompatibleSttOptions extends OpenAiUpstreamOptions {
  /** `verbose_json` brings segments and word timestamps back; any other format gives the text only. */
  responseFormat: 'json' | 'text' | 'srt' | 'verbose_json' | 'vtt';
}

export class OpenAiCompatibleStt implements SttEngine {
  readonly id = 'openai';
  readonly capability = 'stt' as const;
  private readonly client: OpenAI | undefined;
  private readonly upstream: string;

  constructor(
    private readonly options: OpenAiCompatibleSttOptions,
    private readonly logger: Logger,
    fetchImpl: typeof fetch = globalThis.fetch,
  ) {
    this.upstream = `transcription server ${options.baseUrl}`;
    const needsKey = /(^|\.)api\.openai\.com$/.test(new URL(options.baseUrl).hostname);
    if (!needsKey || options.apiKey) {
      this.client = openAiClient(options, fetchImpl);
    }
  }

  state(): EngineState {
    return this.client ? { status: 'ready' } : { status: 'disabled', detail: this.options.remedy ?? 'give it an API key (or the base URL of an OpenAI-compatible server) to enable the hosted fallback' };
  }

  async load(): Promise<void> {
    if (this.client) this.logger.info({ engine: this.id, base: this.options.baseUrl, model: this.options.model }, 'hosted STT configured');
  }

  async *transcribe(request: TranscriptionRequest, signal: AbortSignal): AsyncIterable<SttEvent> {
    const client = this.client!;
    const duration = request.audio.length / STT_SAMPLE_RATE;
    const format = this.options.responseFormat;
    const verbose = format === 'verbose_json';
    const file = await toFile(encodeWavPcm16(request.audio, STT_SAMPLE_RATE), 'audio.wav', { type: 'audio/wav' });
    const params = {
      file,
      model: this.options.model,
      prompt: request.prompt,
      temperature: request.temperature,
      response_format: verbose ? ('verbose_json' as const) : ('json' as const),
      ...(verbose && request.wordTimestamps ? { timestamp_granularities: ['word', 'segment'] as ('word' | 'segment')[] } : {}),
    };
    let response: { text: string; language?: string; segments?: VerboseSegment[]; words?: { word: string; start: number; end: number }[] };
    try {
      response = (request.task === 'translate'
        ? await client.audio.translations.create(params as Parameters<typeof client.audio.translations.create>[0], { signal })
        : await client.audio.transcriptions.create({ ...params, language: request.language }, { signal })) as unknown as typeof response;
    } catch (error) {
      throw upstreamError(error, this.upstream);
    }
    const segments = (response.segments ?? []).map((s, i) => ({
      id: i,
      start: s.start,
      end: s.end,
      text: s.text,
      avgLogprob: s.avg_logprob ?? 0,
      noSpeechProb: s.no_speech_prob ?? null,
      ...(Array.isArray(s.tokens) ? { tokens: s.tokens } : {}),
    }));
    for (const segment of segments) yield { type: 'segment', segment };
    const transcript: Transcript = {
      text: response.text.trim(),
      // OpenAI answers a language name ("english"); compatible servers often a code ("en"): the port speaks codes
      language: languageCode(response.language ?? request.language ?? 'unknown'),
      duration,
      segments,
      ...(request.wordTimestamps && response.words ? { words: response.words } : {}),
    };
    yield { type: 'done', transcript };
  }

  async close(): Promise<void> {}
}
