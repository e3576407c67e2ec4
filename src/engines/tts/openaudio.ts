/**
 * OpenAudio-S1-mini through the fish-speech API server (`python -m tools.api_server`): POST
 * OPENAUDIO_TTS_PATH (`/v1/tts`) with a MessagePack body (what fish-speech's own client sends;
 * reference audio travels as raw bytes), `streaming: true` and `format: wav`, so audio comes back
 * as a WAV header and then 16-bit PCM per text chunk — the first chunk plays while the rest is
 * generated. Retries with jittered exponential backoff (p-retry) on connection errors, timeouts
 * and 502/503/504, never on a 4xx; each attempt is bounded by OPENAUDIO_TIMEOUT_SECONDS (to the
 * response, then between chunks). Health is GET /v1/health, re-checked in the background while
 * the server is down so the chain falls back at once instead of waiting on a dead upstream.
 */
import { encode } from '@msgpack/msgpack';
import pRetry, { AbortError } from 'p-retry';
import type { Logger } from 'pino';
import { WavFormatError, WavStreamReader } from '../../audio/wav.ts';
import { ApiError } from '../../errors.ts';
import type { EngineState } from '../types.ts';
import type { PcmChunk, SynthesisRequest, TtsEngine, Voice } from './types.ts';

const RECHECK_MS = 10_000;
const PROBE_TIMEOUT_MS = 3_000;
const REFERENCES_TTL_MS = 30_000;
const RETRYABLE_STATUS = new Set([502, 503, 504]);

export interface OpenAudioOptions {
  /** Base URL of the fish-speech API server, e.g. `http://fish-speech:8080`. */
  baseUrl: string;
  /** Bearer key, when the server was started with `--api-key`. */
  apiKey?: string;
  /** Path of the synthesis endpoint (`/v1/tts`). */
  ttsPath: string;
  /** Reference voice used when a request names none. */
  defaultReferenceId?: string;
  /** `normalize` sent when a request sets none. */
  defaultNormalize: boolean;
  /** Bound of one attempt (to the response, then between chunks), in milliseconds. */
  timeoutMs: number;
  /** Retries with jittered backoff on connection errors, timeouts and 502/503/504. */
  maxRetries: number;
}

/** fish-speech's error body: {statusCode, message, error}. */
interface UpstreamErrorBody {
  statusCode?: number;
  message?: unknown;
  error?: string;
}

export class OpenAudioEngine implements TtsEngine {
  readonly id = 'openaudio';
  readonly capability = 'tts' as const;
  private current: EngineState = { status: 'loading' };
  private recheck: NodeJS.Timeout | undefined;
  private references: { ids: Set<string>; at: number } = { ids: new Set(), at: 0 };
  private closed = false;
  private readonly base: string;

  constructor(
    private readonly options: OpenAudioOptions,
    private readonly logger: Logger,
    private readonly fetch: typeof globalThis.fetch = globalThis.fetch,
  ) {
    this.base = options.baseUrl.replace(/\/+$/, '');
  }

  state(): EngineState {
    return this.current;
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...(this.options.apiKey ? { Authorization: `Bearer ${this.options.apiKey}` } : {}), ...extra };
  }

  /** Probes GET /v1/health; while it fails, keeps probing every 10 s. */
  async load(): Promise<void> {
    clearTimeout(this.recheck);
    try {
      const response = await this.fetch(`${this.base}/v1/health`, { headers: this.headers(), signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
      await response.body?.cancel();
      if (!response.ok) throw new Error(`GET /v1/health answered ${response.status}`);
      this.markUp();
      void this.referenceIds().catch(() => undefined);
    } catch (error) {
      this.markDown(error);
    }
  }

  private markUp(): void {
    if (this.current.status !== 'ready') this.logger.info({ engine: this.id, base: this.base }, 'fish-speech server is up');
    this.current = { status: 'ready' };
  }

  private markDown(error: unknown): void {
    const reason = error instanceof Error ? error.message : String(error);
    if (this.current.status !== 'error') this.logger.warn({ engine: this.id, base: this.base, reason }, 'fish-speech server is down');
    this.current = {
      status: 'error',
      detail: `fish-speech server at ${this.base} is unreachable (${reason}). Start it (python -m tools.api_server --listen 0.0.0.0:8080 ...) or fix OPENAUDIO_API_BASE; re-checking every ${RECHECK_MS / 1000} s.`,
    };
    if (this.closed) return;
    clearTimeout(this.recheck);
    this.recheck = setTimeout(() => void this.load(), RECHECK_MS);
    this.recheck.unref();
  }

  speaksAt(speed: number): boolean {
    return speed === 1;
  }

  /** The server's reference voices (GET /v1/references/list), cached for 30 s. */
  private async referenceIds(): Promise<Set<string>> {
    if (Date.now() - this.references.at < REFERENCES_TTL_MS) return this.references.ids;
    const response = await this.fetch(`${this.base}/v1/references/list`, { headers: this.headers({ Accept: 'application/json' }), signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    if (!response.ok) {
      await response.body?.cancel();
      throw new Error(`GET /v1/references/list answered ${response.status}`);
    }
    const body = (await response.json()) as { reference_ids?: unknown };
    const ids = Array.isArray(body.reference_ids) ? body.reference_ids.filter((x): x is string => typeof x === 'string') : [];
    this.references = { ids: new Set(ids), at: Date.now() };
    return this.references.ids;
  }

  async voices(): Promise<Voice[]> {
    try {
      return [...(await this.referenceIds())].map((id) => ({ id, name: id, engine: this.id }));
    } catch (error) {
      this.logger.warn({ engine: this.id, reason: (error as Error).message }, 'could not list fish-speech references');
      return [];
    }
  }

  /** Stores a reference voice on the server (POST /v1/references/add: id, audio bytes, transcript). */
  async addVoice(voice: { id: string; audio: Buffer; text: string }, signal: AbortSignal): Promise<void> {
    await this.manageReferences('POST', '/v1/references/add', { id: voice.id, audio: voice.audio, text: voice.text }, voice.id, signal);
  }

  /** Deletes a reference voice (DELETE /v1/references/delete). */
  async deleteVoice(id: string, signal: AbortSignal): Promise<void> {
    await this.manageReferences('DELETE', '/v1/references/delete', { reference_id: id }, id, signal);
  }

  private async manageReferences(method: 'POST' | 'DELETE', path: string, body: Record<string, unknown>, id: string, signal: AbortSignal): Promise<void> {
    const timeoutMs = this.options.timeoutMs;
    let response: Response;
    try {
      response = await this.fetch(`${this.base}${path}`, {
        method,
        headers: this.headers({ 'Content-Type': 'application/msgpack', Accept: 'application/json' }),
        body: encode(body),
        signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]),
      });
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      throw this.transportError(error, timeoutMs);
    } finally {
      this.references.at = 0; // the list may have changed: read it afresh next time
    }
    if (response.ok) return void (await response.body?.cancel());
    if (response.status === 409) {
      await response.body?.cancel();
      throw new ApiError(409, 'invalid_request_error', `fish-speech already has a voice "${id}"; delete it first or pick another id.`, { param: 'id', code: 'voice_exists' });
    }
    if (response.status === 404 && method === 'DELETE') {
      await response.body?.cancel();
      throw new ApiError(404, 'not_found_error', `fish-speech has no voice "${id}".`, { param: 'id', code: 'voice_not_found' });
    }
    throw await this.statusError(response);
  }

  /** `voice` names a fish-speech reference when the server has one by that name. */
  private async referenceId(request: SynthesisRequest): Promise<string | undefined> {
    if (request.referenceId) return request.referenceId;
    if (request.voice && !request.references?.length) {
      const known = await this.referenceIds().catch(() => new Set<string>());
      if (known.has(request.voice)) return request.voice;
    }
    return this.options.defaultReferenceId;
  }

  /** The ServeTTSRequest body; fields the caller left out are left to fish-speech's defaults. */
  private async body(request: SynthesisRequest): Promise<Uint8Array> {
    const referenceId = await this.referenceId(request);
    const body: Record<string, unknown> = {
      text: request.text,
      format: 'wav',
      streaming: true,
      normalize: request.normalize ?? this.options.defaultNormalize,
      references: (request.references ?? []).map((r) => ({ audio: new Uint8Array(r.audio.buffer, r.audio.byteOffset, r.audio.byteLength), text: r.text })),
      reference_id: referenceId ?? null,
    };
    const optional: [string, unknown][] = [
      ['chunk_length', request.chunkLength],
      ['seed', request.seed],
      ['use_memory_cache', request.useMemoryCache === undefined ? undefined : request.useMemoryCache ? 'on' : 'off'],
      ['max_new_tokens', request.maxNewTokens],
      ['top_p', request.topP],
      ['repetition_penalty', request.repetitionPenalty],
      ['temperature', request.temperature],
    ];
    for (const [key, value] of optional) if (value !== undefined) body[key] = value;
    return encode(body);
  }

  async *synthesize(request: SynthesisRequest, signal: AbortSignal): AsyncIterable<PcmChunk> {
    const body = await this.body(request);
    const timeoutMs = this.options.timeoutMs;
    let attempt: { response: Response; controller: AbortController };
    try {
      attempt = await pRetry(() => this.post(body, signal, timeoutMs), {
        retries: this.options.maxRetries,
        minTimeout: 200,
        maxTimeout: 2000,
        factor: 2,
        randomize: true,
        signal,
        onFailedAttempt: (error) => {
          if (error.retriesLeft > 0) this.logger.warn({ engine: this.id, attempt: error.attemptNumber, reason: error.message }, 'fish-speech request failed; retrying');
        },
      });
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      const apiError = error instanceof ApiError ? error : this.transportError(error, timeoutMs);
      // the connection failed on every attempt: probe /v1/health now, so a server that is really
      // down is reported (and skipped by the chain) until it is back
      if (apiError.code === 'upstream_unreachable' || apiError.code === 'upstream_timeout') void this.load();
      throw apiError;
    }
    this.markUp();
    yield* this.readAudio(attempt, signal, timeoutMs);
  }

  /** One attempt: resolves with a 200 response; throws what p-retry should (or should not) retry. */
  private async post(body: Uint8Array, signal: AbortSignal, timeoutMs: number): Promise<{ response: Response; controller: AbortController }> {
    const controller = new AbortController();
    const onAbort = () => controller.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => controller.abort(new DOMException('timed out', 'TimeoutError')), timeoutMs);
    try {
      const response = await this.fetch(`${this.base}${this.options.ttsPath}`, {
        method: 'POST',
        headers: this.headers({ 'Content-Type': 'application/msgpack', Accept: 'audio/wav' }),
        body,
        signal: controller.signal,
      });
      if (response.ok) return { response, controller };
      const error = await this.statusError(response);
      if (RETRYABLE_STATUS.has(response.status)) throw error;
      throw new AbortError(error);
    } catch (error) {
      if (signal.aborted) throw new AbortError(signal.reason as Error);
      throw error;
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }
  }

  private async statusError(response: Response): Promise<ApiError> {
    const text = await response.text().catch(() => '');
    let message = text.slice(0, 500);
    try {
      const parsed = JSON.parse(text) as UpstreamErrorBody;
      if (parsed.message !== undefined) message = typeof parsed.message === 'string' ? parsed.message : JSON.stringify(parsed.message);
    } catch {
      // not JSON: keep the text
    }
    const status = response.status;
    const what = `fish-speech (${this.base}) answered ${status}${message ? `: ${message}` : ''}`;
    if (status === 401 || status === 403) return new ApiError(502, 'upstream_error', `${what}. Check OPENAUDIO_API_KEY.`, { code: 'upstream_auth' });
    if (status === 429) return new ApiError(429, 'rate_limit_error', what, { code: 'upstream_rate_limited', headers: { 'Retry-After': '1' } });
    if (status === 415) return new ApiError(502, 'upstream_error', what, { code: 'upstream_rejected' });
    if (status >= 400 && status < 500) return new ApiError(status === 413 ? 413 : 400, 'invalid_request_error', what, { code: 'upstream_rejected' });
    return new ApiError(502, 'upstream_error', what, { code: 'upstream_failed' });
  }

  private transportError(error: unknown, timeoutMs: number): ApiError {
    const name = (error as Error)?.name;
    if (name === 'TimeoutError' || (error as Error)?.message === 'timed out') {
      return new ApiError(504, 'upstream_error', `fish-speech (${this.base}) did not answer within ${timeoutMs / 1000} s (OPENAUDIO_TIMEOUT_SECONDS).`, { code: 'upstream_timeout', cause: error });
    }
    const cause = (error as { cause?: { code?: string; message?: string } })?.cause;
    const reason = cause?.code ?? cause?.message ?? (error as Error)?.message ?? String(error);
    return new ApiError(502, 'upstream_error', `fish-speech (${this.base}) is unreachable (${reason}).`, { code: 'upstream_unreachable', cause: error });
  }

  /** The streamed WAV → PCM chunks; an idle gap longer than the timeout ends it with 504. */
  private async *readAudio(attempt: { response: Response; controller: AbortController }, signal: AbortSignal, timeoutMs: number): AsyncIterable<PcmChunk> {
    const { response, controller } = attempt;
    const reader = new WavStreamReader();
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => controller.abort(new DOMException('timed out', 'TimeoutError')), timeoutMs);
    };
    const onAbort = () => controller.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    arm();
    try {
      for await (const bytes of response.body as unknown as AsyncIterable<Uint8Array>) {
        arm();
        const samples = reader.push(bytes);
        if (samples.length > 0) yield { samples, sampleRate: reader.format!.sampleRate };
      }
      reader.end();
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      if (error instanceof WavFormatError) {
        throw new ApiError(502, 'upstream_error', `fish-speech (${this.base}) sent audio that is not 16-bit PCM WAV: ${error.message}.`, { code: 'upstream_bad_audio' });
      }
      throw this.transportError(controller.signal.reason ?? error, timeoutMs);
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      controller.abort(); // releases the connection when the consumer stops early
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.recheck);
  }
}
