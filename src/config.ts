/**
 * The service's whole configuration: one zod schema over environment variables (and an optional
 * `.env` file), parsed once at start-up. Parsing collects every problem before failing, so an
 * operator fixes them all in one go. The variable table in docs/configuration.md is generated from this schema
 * (`npm run env-table`) and a test fails when it is stale.
 */
import fs from 'node:fs';
import os from 'node:os';
import { parse as parseDotenv } from 'dotenv';
import { z } from 'zod';
import { AUDIO_FORMATS } from './audio/formats.ts';
import { parseMemoryBudget } from './engines/memory-budget.ts';
import { readModelsFile } from './models/models-file.ts';
import { BROWSER_BLOCKED_PORTS } from './util/browser-ports.ts';

/**
 * A keep-alive (Ollama's syntax): a duration with ms/s/m/h (a plain number: seconds), 0, or any
 * negative value (forever). Shared with the request field `keep_alive`.
 */
export const KEEP_ALIVE_PATTERN = /^-?\d+(\.\d+)?(ms|s|m|h)?$/;
export const KEEP_ALIVE_MESSAGE = 'must be a duration such as 30s, 5m, 1h (a plain number: seconds), 0, or a negative value (-1: keep loaded)';
/** The longest delay a Node timer holds (2^31-1 ms, about 24.8 days): a longer keep-alive is forever. */
export const MAX_KEEP_ALIVE_MS = 2 ** 31 - 1;

/** A keep-alive in ms as the registry takes it: negative, or longer than a timer holds → -1 (forever). */
export function keepAliveMs(ms: number): number {
  return ms < 0 || !Number.isFinite(ms) || ms > MAX_KEEP_ALIVE_MS ? -1 : ms;
}

const TRUE = new Set(['true', '1', 'yes', 'on']);
const FALSE = new Set(['false', '0', 'no', 'off']);

const bool = (fallback: boolean) =>
  z
    .string()
    .trim()
    .toLowerCase()
    .refine((v) => TRUE.has(v) || FALSE.has(v), 'must be true or false (also 1/0, yes/no, on/off)')
    .transform((v) => TRUE.has(v))
    .prefault(String(fallback));

const int = (fallback: number, min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^-?\d+$/, 'must be an integer')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max))
    .prefault(String(fallback));

const num = (fallback: number, min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^-?\d+(\.\d+)?$/, 'must be a number')
    .transform(Number)
    .pipe(z.number().min(min).max(max))
    .prefault(String(fallback));

const text = (fallback: string) => z.string().trim().min(1, 'must not be empty').prefault(fallback);
const optionalText = () =>
  z
    .string()
    .trim()
    .optional()
    .transform((v) => (v ? v : undefined));

const url = (fallback: string) =>
  z
    .string()
    .trim()
    .prefault(fallback)
    .pipe(z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }))
    .transform((v) => v.replace(/\/+$/, ''));

const oneOf = <T extends readonly [string, ...string[]]>(values: T, fallback: T[number]) =>
  z.string().trim().toLowerCase().pipe(z.enum(values)).prefault(fallback);

/** A comma-separated ordered list whose items all come from `values` (a fallback chain). */
const chain = <T extends readonly [string, ...string[]]>(values: T, fallback: string) =>
  z
    .string()
    .trim()
    .toLowerCase()
    .prefault(fallback)
    .transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean))
    .pipe(z.array(z.enum(values)).min(1, `must name at least one of ${values.join(', ')}`));

const keyList = () =>
  z
    .string()
    .optional()
    .transform((v) => (v ?? '').split(',').map((k) => k.trim()).filter(Boolean));

/** Comma-separated web origins (`scheme://host[:port]`), e.g. `https://voice.example.com`. */
const originList = () =>
  optionalText().refine(
    (v) =>
      v === undefined ||
      v
        .split(',')
        .map((o) => o.trim())
        .filter(Boolean)
        .every((o) => {
          try {
            const url = new URL(o);
            return /^https?:$/.test(url.protocol) && url.pathname === '/' && !url.search && !url.hash;
          } catch {
            return false;
          }
        }),
    'must be comma-separated origins such as https://voice.example.com (scheme://host[:port], no path)',
  );

const headerName = (fallback: string) =>
  z
    .string()
    .trim()
    .regex(/^[A-Za-z0-9-]+$/, 'must be an HTTP header name (letters, digits, dashes)')
    .prefault(fallback);

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

export const configSchema = z.object({
  // --- server
  PORT: int(6666, 0, 65535).describe('TCP port the HTTP + WebSocket server listens on.'),
  BROWSER_PORT: z
    .string()
    .trim()
    .toLowerCase()
    .prefault('6680')
    .refine((v) => v === 'off' || /^\d+$/.test(v), 'must be a port number, or 0/off to disable')
    .transform((v) => (v === 'off' ? 0 : Number(v)))
    .pipe(
      z
        .number()
        .int()
        .min(0)
        .max(65535)
        .refine((p) => !BROWSER_BLOCKED_PORTS.has(p), 'browsers refuse this port (ERR_UNSAFE_PORT); pick another, e.g. 6680 or 8080'),
    )
    .describe(
      'A second port for people: the same app (routes, keys, limits) also listens here, because browsers refuse 6666 (`ERR_UNSAFE_PORT`). Open the playground and /docs on it. `0`/`off` = only PORT; equal to PORT = one listener.',
    ),
  HOST: text('0.0.0.0').describe('Interface to bind (`127.0.0.1` for loopback only).'),
  TLS_CERT_FILE: optionalText().describe('PEM certificate (chain): with TLS_KEY_FILE, the server speaks HTTPS/WSS itself (the `openai` SDK\'s realtime client always uses wss:). Re-read on SIGHUP.'),
  TLS_KEY_FILE: optionalText().describe('PEM private key of TLS_CERT_FILE. Re-read on SIGHUP.'),
  LOG_LEVEL: oneOf(LOG_LEVELS, 'info').describe('Log level, any case: trace, debug, info, warn, error, fatal, silent.'),
  REQUEST_ID_HEADER: headerName('X-Request-ID').describe(
    'Header read for an incoming request id (kept when it is 1-128 safe characters) and echoed on every response.',
  ),
  SHUTDOWN_GRACE_SECONDS: num(30, 0, 3600).describe(
    'On SIGTERM/SIGINT: how long in-flight requests may take to finish before the process exits anyway.',
  ),
  MAX_BODY_BYTES: int(1_048_576, 1024, 1_073_741_824).describe('Largest JSON request body accepted (bytes); larger gets 413.'),
  WS_MAX_MESSAGE_BYTES: int(1_048_576, 1024, 268_435_456).describe('Largest WebSocket message accepted (bytes); larger closes the socket with 1009.'),
  WS_MAX_MESSAGES_PER_SECOND: int(500, 0, 1_000_000).describe(
    'Incoming messages per second per WebSocket (bursts of one second allowed). A faster sender is slowed down — reading pauses until the budget refills — and nothing is dropped. 0 = off.',
  ),
  WS_MAX_STREAMS_PER_KEY: int(0, 0, 100_000).describe(
    'WebSockets open at once per API key (per client IP without keys) on this replica; one more is refused with 429 `too_many_streams`. 0 = off (the default: an application that serves its users through one key would hit any fixed number).',
  ),
  REQUEST_TIMEOUT_SECONDS: num(600, 0, 86_400).describe(
    'A request must be received and answered (its response started) within this time, else 504 `request_timeout` and its work is cancelled. Streamed responses are bounded by their own limits once they start. 0 = off.',
  ),

  // --- security
  API_KEY_ENABLED: bool(false).describe('Require an API key on every route except /health, /health/ready (and /metrics, /docs unless set below).'),
  API_KEY_HEADER_NAME: headerName('X-API-Key').describe('Header that carries the API key (`Authorization: Bearer <key>` is always accepted too).'),
  API_KEYS: keyList().describe('Comma-separated accepted API keys. Re-read on SIGHUP (rotation without restart).'),
  API_KEYS_FILE: optionalText().describe('File with more accepted keys, one per line (`#` comments). Re-read on SIGHUP.'),
  ADMIN_API_KEYS: keyList().describe('Comma-separated operator keys: with API_KEY_ENABLED, only these may call POST /v1/models/{id}/load and /unload (others get 403 `permission_denied`). Valid on every other route too, as any key. Re-read on SIGHUP.'),
  ADMIN_API_KEYS_FILE: optionalText().describe('File with more operator keys, one per line (`#` comments). Re-read on SIGHUP.'),
  CORS_ORIGINS: optionalText().describe(
    'Browser origins allowed to call the API and open its WebSockets (comma-separated, e.g. `http://localhost:5173`; `*` for any). Unset: same-origin only (the served playground).',
  ),
  PUBLIC_ORIGINS: originList().describe(
    'The origins the service itself is reached at by browsers (comma-separated, e.g. `https://voice.example.com`), for the WebSocket origin check. Unset: pages served from a loopback name or an IP address (`http://localhost:6666`, `http://192.168.1.5:6666`) may open WebSockets to the same host; a page on a domain name needs it (or CORS_ORIGINS).',
  ),
  AUTH_FAILURES_PER_MINUTE: int(20, 0, 1_000_000).describe(
    'Wrong API keys tolerated per client IP per minute (per replica); past it the IP is blocked until the minute ends: every request that needs a key gets 429 `too_many_failed_authentications` with Retry-After, a good key included. 0 = off.',
  ),
  RATE_LIMIT_PER_MINUTE: int(0, 0, 10_000_000).describe('Requests (and WebSocket connections) per API key — per client IP without keys — per minute; beyond it 429 with Retry-After. 0 = off. Shared across replicas through Redis when REDIS_URL is set.'),
  METRICS_REQUIRE_API_KEY: bool(false).describe('Also require the API key on /metrics (off: Prometheus scrapes without a key).'),
  PLAYGROUND_DIR: text('frontend/dist').describe('The built playground (npm run build -w frontend), served at /playground/; `/` redirects there.'),
  DOCS_REQUIRE_API_KEY: bool(false).describe('Also require the API key on /docs (the reference and /docs/openapi.{json,yaml}).'),

  // --- observability
  GPU_METRICS: oneOf(['auto', 'off'] as const, 'auto').describe(
    '`auto`: export per-GPU utilization/memory gauges read with `nvidia-smi` when it is on PATH; `off`: never.',
  ),
  GPU_METRICS_INTERVAL_SECONDS: num(15, 1, 3600).describe('How often the GPU gauges are refreshed.'),

  // --- text generation (Gemma 3)
  LLM_BACKEND: oneOf(['local', 'openai'] as const, 'local').describe(
    '`local`: Gemma 3 GGUF embedded through llama.cpp; `openai`: any OpenAI-compatible server (vLLM, Ollama, llama.cpp server, OpenAI).',
  ),
  LLM_RUNNER: oneOf(['process', 'inline'] as const, 'process').describe(
    '`process`: the embedded model runs in a supervised child process (a crash in llama.cpp fails only its in-flight generations with 503 `engine_restarting`; the runner restarts with backoff); `inline`: in the service process itself.',
  ),
  RUNNER_HANG_SECONDS: num(30, 0, 86_400).describe(
    'A model runner process (LLM_RUNNER / STT_RUNNER = process) that answers no ping for this long, while it loads its model or after, is killed and restarted (reason `hang` in `runner_restarts_total`; during its load it counts as a crash on load); its in-flight requests get 503 `engine_restarting`. Loading and inference run off the runner\'s event loop, so a loading or busy runner still answers (a runner that has not answered yet gets at least 15 s to start). 0 = no watchdog.',
  ),
  RUNNER_LOAD_TIMEOUT_SECONDS: num(600, 0, 86_400).describe(
    'A model runner that has not loaded its model this long after it started is killed (reason `load_timeout`) and counts as a crash on load (restarted with backoff; `error` after 3 in a row). Covers a load that never ends while the runner still answers pings. 0 = no limit.',
  ),
  RUNNER_RESTART_BACKOFF_MS: z
    .string()
    .trim()
    .regex(/^\d+\s*,\s*\d+$/, 'must be `min,max` in milliseconds, e.g. 250,10000')
    .transform((v) => {
      const [min, max] = v.split(',').map(Number) as [number, number];
      return { min, max };
    })
    .refine((b) => b.min >= 1 && b.min <= b.max && b.max <= 3_600_000, 'needs 1 ≤ min ≤ max ≤ 3600000')
    .prefault('250,10000')
    .describe('Restart delay of a model runner that exited, `min,max` in ms: min after the first crash, doubling per consecutive crash, at most max (a runner up for a minute starts again at min).'),
  GEMMA_MODEL: text('hf:ggml-org/gemma-3-1b-it-GGUF/gemma-3-1b-it-Q4_K_M.gguf').describe(
    'GGUF file path, or `hf:<user>/<repo>/<file>.gguf` resolved into the Hugging Face cache (downloaded once).',
  ),
  LLM_THREADS: int(0, 0, 1024).describe(
    'CPU threads for llama.cpp; 0 = the cores this process may use, less one for the event loop. Measured on 2 cores: 1 thread gives the fastest single answer (2 threads: 2-10× slower, the more so the smaller the model), 2 threads up to ~1.3× the tokens/s of 4 concurrent generations; see `npm run bench:llm`.',
  ),
  LLM_CONTEXT_SIZE: int(4096, 64, 1_048_576).describe('Context window per sequence (tokens).'),
  LLM_PARALLEL: int(2, 1, 64).describe('Generations run at once on the loaded model (llama.cpp batches them).'),
  LLM_QUEUE_SIZE: int(32, 0, 10_000).describe('Generations that may wait for a free slot; beyond that 429 with Retry-After.'),
  LLM_MAX_TOKENS: int(2048, 1, 1_048_576).describe('Upper bound for max_tokens on every generation route.'),
  GRAMMAR_MAX_SCHEMA_BYTES: int(65_536, 256, 16_777_216).describe(
    'Largest `response_format` JSON schema accepted (bytes, serialized); larger gets 400. Its grammar is built and parsed on the event loop, in time that grows with the schema.',
  ),
  GRAMMAR_MAX_DEPTH: int(64, 2, 1000).describe(
    'Deepest `response_format` JSON schema accepted, in levels of JSON nesting with `$ref`s followed (an object schema and its `properties` map are two levels); deeper gets 400.',
  ),
  GRAMMAR_MAX_ENUM_VALUES: int(1000, 1, 1_000_000).describe(
    '`enum` values accepted in one `response_format` JSON schema, all enums together; more gets 400 (llama.cpp parses a large alternation in time that grows faster than its size).',
  ),
  GRAMMAR_MAX_REPETITIONS: int(20_000, 100, 10_000_000).describe(
    'Repetitions a `response_format` JSON schema\'s grammar may hold in all, for the embedded engine: each distinct maxLength, minLength, maxItems or minItems bound n costs n rules that llama.cpp expands at the start of every generation, on the model\'s thread (~1 µs each; 1,000 distinct bounds near 1,000 took 0.5-0.9 s a request). More gets 400; one bound over 1,000 always does (llama.cpp cannot enforce it).',
  ),
  LLM_TEMPERATURE: num(1, 0, 2).describe(
    'Sampling temperature of the embedded model when a request sets none (Gemma 3\'s recommended 1.0; 0 = greedy). A remote server (LLM_BACKEND=openai) applies its own defaults.',
  ),
  LLM_TOP_K: int(64, 0, 1000).describe('top_k of the embedded model when a request sets none (Gemma 3\'s recommended 64; 0 = off).'),
  LLM_TOP_P: num(0.95, 0.01, 1).describe('top_p of the embedded model when a request sets none (Gemma 3\'s recommended 0.95; 1 = off).'),
  LLM_DEVICE: z
    .string()
    .trim()
    .toLowerCase()
    .regex(/^(auto|cpu|cuda(:\d+)?|vulkan|metal)$/, 'must be auto, cpu, cuda, cuda:N, vulkan or metal')
    .prefault('auto')
    .describe('Where llama.cpp runs: auto, cpu, cuda, cuda:N (GPU index), vulkan, metal.'),
  LLM_GPU_LAYERS: z
    .string()
    .trim()
    .toLowerCase()
    .regex(/^(auto|max|\d+)$/, 'must be auto, max or a number')
    .prefault('auto')
    .describe('Layers offloaded to the GPU: auto, max, or a count.'),
  LLM_API_BASE: url('https://api.openai.com/v1').describe('Base URL of the OpenAI-compatible server when LLM_BACKEND=openai.'),
  LLM_API_KEY: optionalText().describe('Bearer key for LLM_API_BASE (when it needs one).'),
  LLM_MODEL: optionalText().describe('Model name sent to LLM_API_BASE; required when LLM_BACKEND=openai.'),
  LLM_TIMEOUT_SECONDS: num(120, 1, 3600).describe('Timeout of one remote LLM request.'),
  LLM_MAX_RETRIES: int(2, 0, 10).describe('Retries (with backoff) on 429/5xx/network errors of the remote LLM.'),

  // --- models on disk
  MODELS_FILE: optionalText().describe(
    'A models file (YAML or JSON) naming several models per capability, routed by the request\'s `model` (see docs/operations.md, "Several models"). Unset: the variables here define one model per capability, which answers any `model` name.',
  ),
  MODEL_KEEP_ALIVE: z
    .string()
    .trim()
    .toLowerCase()
    .regex(KEEP_ALIVE_PATTERN, KEEP_ALIVE_MESSAGE)
    .prefault('-1')
    .transform(durationMs)
    .describe(
      'How long a model stays loaded after its last request (Ollama\'s keep_alive): a duration such as `30s`, `5m`, `1h`; `0` unloads after each request; `-1` (any negative value, or more than 2^31-1 ms ≈ 24.8 days) keeps it loaded. Applies to every model in a runner process (local LLMs with LLM_RUNNER=process, local Whisper with STT_RUNNER=process); they load again on the next request. `POST /v1/models/{id}/load` and `/unload` do it by hand.',
    ),
  MODEL_MEMORY_BUDGET_MB: z
    .string()
    .trim()
    .optional()
    .transform((v, ctx) => {
      if (!v) return undefined;
      const { budgets, problems } = parseMemoryBudget(v);
      for (const message of problems) ctx.addIssue({ code: 'custom', message });
      return budgets;
    })
    .describe(
      'Memory the model runners may hold, in MB: a number applies to every device separately; `cpu=16000,cuda:0=80000` sets one per device (a device not named has no budget). Before a model loads, the least recently used idle runner models on its device are unloaded until it fits; a model that cannot fit gets 503 `insufficient_memory`. Unset: no budget. See docs/operations.md, "Memory budget".',
    ),
  MODEL_LOAD_WAIT_SECONDS: num(120, 0, 3600).describe(
    'How long a request for a model that is loading (or whose runner is restarting after a crash) waits for it; past that (0: at once) it gets 503 `engine_loading` (`engine_restarting`) with Retry-After, and the load goes on.',
  ),
  LLM_MODEL_ALIASES: z
    .string()
    .trim()
    .prefault('')
    .transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean))
    .describe('Comma-separated `model` names that pick the default LLM (e.g. `gpt-4o-mini,gpt-4o` for clients whose model name is fixed).'),
  MODEL_DOWNLOAD: bool(true).describe('Download missing `hf:` models and Whisper tiers at start-up; false = use the cache only.'),
  MODEL_DOWNLOAD_TIMEOUT_SECONDS: num(3600, 1, 86_400).describe('Upper bound for one model download (a stalled connection fails sooner).'),
  HF_ENDPOINT: url('https://huggingface.co').describe('Hugging Face hub endpoint (a mirror or proxy may stand in).'),
  HF_HOME: optionalText().describe('Hugging Face home; the cache is `$HF_HOME/hub` (default `~/.cache/huggingface`).'),
  HUGGING_FACE_HUB_TOKEN: optionalText().describe('Token for gated/private Hugging Face repos (HF_TOKEN is read too).'),
  HF_TOKEN: optionalText().describe('Alternative name for HUGGING_FACE_HUB_TOKEN.'),

  // --- speech-to-text (Whisper)
  STT_BACKEND: chain(['local', 'openai'] as const, 'local,openai').describe(
    'Speech-to-text engines in fallback order: `local` (whisper.cpp), `openai` (hosted or any OpenAI-compatible STT).',
  ),
  ENABLE_LOCAL_WHISPER: bool(true).describe('Load the embedded whisper.cpp engine.'),
  STT_RUNNER: oneOf(['process', 'inline'] as const, 'process').describe(
    '`process`: the embedded Whisper runs in a supervised child process (a crash in whisper.cpp fails only its in-flight transcriptions with 503 `engine_restarting`; the runner restarts with backoff); `inline`: in the service process itself.',
  ),
  LOCAL_WHISPER_MODEL: text('base').describe('Whisper tier (tiny, tiny.en, base, base.en, small, medium, large-v3, large-v3-turbo, *-q5_1...) or a ggml file path.'),
  STT_PARALLEL: int(1, 1, 64).describe('Whisper windows (30 s of audio) decoded at once, each with WHISPER_THREADS; requests take turns window by window.'),
  STT_QUEUE_SIZE: int(16, 0, 10_000).describe('Transcription requests in flight beyond STT_PARALLEL; beyond that 429 with Retry-After.'),
  MAX_UPLOAD_BYTES: int(26_214_400, 1024, 2_147_483_647).describe('Largest uploaded audio file (bytes; default 25 MiB like OpenAI); larger gets 413.'),
  MAX_AUDIO_SECONDS: num(3600, 1, 86_400).describe('Longest audio accepted for transcription (seconds, after decoding); longer gets 413.'),
  MAX_AUDIO_IN_FLIGHT_SECONDS: z
    .string()
    .trim()
    .regex(/^\d+(\.\d+)?$/, 'must be a number of seconds')
    .transform(Number)
    .pipe(z.number().min(1).max(10_000_000))
    .optional()
    .describe(
      'Decoded audio the HTTP speech-to-text and dialogue requests may hold at once, all together (seconds; 16 kHz float32 = 64 KB/s, 1 h ≈ 230 MB). Reserved as decoding proceeds (each upload up to 5 s ahead of what it has decoded), released when the request ends; past it 503 `audio_budget_exceeded` with Retry-After. Below MAX_AUDIO_SECONDS the longest accepted file can never run. Unset: 2 × MAX_AUDIO_SECONDS.',
    ),
  DECODE_THREADS: int(2, 1, 64).describe('Worker threads that decode uploaded audio (off the event loop); each decodes one file at a time.'),
  DECODE_QUEUE_SIZE: int(32, 0, 10_000).describe('Uploaded files waiting for a decode thread; one more gets 503 `decoder_busy` with Retry-After.'),
  STT_DEVICE: z
    .string()
    .trim()
    .toLowerCase()
    .regex(/^(auto|cpu|cuda(:\d+)?)$/, 'must be auto, cpu, cuda or cuda:N')
    .prefault('auto')
    .describe('Where the embedded Whisper runs: cpu (smart-whisper, AVX2 build), cuda (@fugood/whisper.node CUDA 12 build; first visible GPU, cuda:N needs CUDA_VISIBLE_DEVICES), auto (CUDA when an NVIDIA driver is loaded and the CUDA build loads, else CPU).'),
  WHISPER_THREADS: int(0, 0, 1024).describe('CPU threads per Whisper transcription; 0 = usable cores less one.'),
  WHISPER_BEAM_SIZE: int(5, 1, 16).describe('Beam search width of the embedded Whisper (5, as whisper.cpp\'s CLI and faster-whisper default); 1 = greedy decoding, ~0.1 s less CPU per 30 s window on a tiny model, slightly less accurate.'),
  STT_VAD_FILTER: bool(false).describe(
    'Default of the `vad_filter` request field (transcription routes; also used by transcription jobs and WebSocket turns): the embedded Whisper gets only the speech regions the WebRTC VAD finds (timestamps still refer to the original audio; silence answers empty text). Off by default: see docs/benchmarks.md#vad-filter.',
  ),
  STT_NO_SPEECH_THRESHOLD: num(0.6, 0, 1).describe(
    'A segment is dropped as silence when its no_speech_prob is above this AND its avg_logprob is below STT_LOGPROB_THRESHOLD (OpenAI\'s reference rule); 1 keeps every segment.',
  ),
  STT_LOGPROB_THRESHOLD: num(-1, -100, 0).describe('The avg_logprob below which a segment with a high no_speech_prob counts as silence (see STT_NO_SPEECH_THRESHOLD).'),
  VAD_MODE: int(2, 0, 3).describe('WebRTC VAD aggressiveness for the WebSockets (0 keeps the most audio as speech, 3 the least).'),
  VAD_SPEECH_START_MS: int(60, 20, 2000).describe('Voiced audio needed before speech counts as started (ms).'),
  VAD_SILENCE_MS: int(500, 100, 10_000).describe('Silence that ends a turn (ms): lower answers sooner, higher lets people pause.'),
  VAD_MIN_SPEECH_MS: int(200, 20, 10_000).describe('Shorter speech is dropped as noise (ms; the WebRTC VAD marks ~100 ms after any sound as voiced, so a click counts ~120 ms).'),
  VAD_PREROLL_MS: int(300, 0, 2000).describe('Audio kept from before the detected start of speech (ms), so the first syllable is not clipped.'),
  WS_MAX_TURN_SECONDS: num(30, 1, 600).describe('A turn longer than this is ended (and transcribed) anyway on /ws/stt and /ws/dialogue.'),
  STT_PARTIAL_INTERVAL_MS: int(1000, 0, 60_000).describe('How often /ws/stt and /ws/dialogue send `transcript.partial` while someone speaks (ms); 0 turns partials off.'),
  OPENAI_API_KEY: optionalText().describe('Key for the hosted OpenAI (or compatible) transcription API.'),
  OPENAI_API_BASE: url('https://api.openai.com/v1').describe('Base URL of the hosted transcription API (OpenAI, Speaches, ...).'),
  OPENAI_TIMEOUT_SECONDS: num(120, 1, 3600).describe('Timeout of one hosted transcription request.'),
  OPENAI_MAX_RETRIES: int(2, 0, 10).describe('Retries (with backoff) on 429/5xx/network errors of the hosted transcription API.'),
  OPENAI_WHISPER_MODEL: text('gpt-4o-mini-transcribe').describe('Model name for the hosted transcription API.'),
  OPENAI_WHISPER_RESPONSE_FORMAT: oneOf(['json', 'text', 'srt', 'verbose_json', 'vtt'] as const, 'json').describe(
    'Format requested from the hosted transcription API: verbose_json brings segments, confidences and word timestamps (whisper-1, most compatible servers); json/text the text only (gpt-4o-*-transcribe).',
  ),

  // --- text-to-speech (OpenAudio / fish-speech)
  TTS_BACKEND: chain(['openaudio', 'embedded'] as const, 'openaudio,embedded').describe(
    'Text-to-speech engines in fallback order: `openaudio` (fish-speech API server), `embedded` (offline voice).',
  ),
  OPENAUDIO_API_BASE: url('http://localhost:8080').describe('Base URL of the fish-speech (OpenAudio-S1-mini) API server.'),
  OPENAUDIO_API_KEY: optionalText().describe('Bearer key for the fish-speech server (when started with --api-key).'),
  OPENAUDIO_TTS_PATH: text('/v1/tts').describe('Path of the synthesis endpoint on OPENAUDIO_API_BASE.'),
  OPENAUDIO_DEFAULT_FORMAT: oneOf(AUDIO_FORMATS, 'wav').describe(
    'Audio format of /v1/text-to-speech when the request names none (wav, pcm, mp3, opus, flac, aac). fish-speech itself is always asked for streamed WAV, which the gateway encodes.',
  ),
  OPENAUDIO_DEFAULT_REFERENCE_ID: optionalText().describe('Reference voice id used when a request names none.'),
  OPENAUDIO_DEFAULT_NORMALIZE: bool(true).describe('Default `normalize` (text normalization) sent to fish-speech.'),
  OPENAUDIO_TIMEOUT_SECONDS: num(60, 1, 3600).describe('Timeout of one fish-speech request.'),
  OPENAUDIO_MAX_RETRIES: int(2, 0, 10).describe('Retries with jittered backoff on connection errors, timeouts and 502/503/504.'),
  DEFAULT_AUDIO_SAMPLE_RATE: int(24_000, 8000, 192_000).describe('Sample rate of synthesized audio unless a request asks otherwise (Hz).'),
  EMBEDDED_TTS_VOICE: text('en-us').describe('Default voice of the embedded eSpeak NG voice (a language such as en-us, en-gb, de, fr, optionally +variant like en-us+f3).'),
  EMBEDDED_TTS_WORKERS: int(1, 1, 64).describe('Worker threads of the embedded voice; each speaks one utterance at a time.'),
  TTS_PARALLEL: int(4, 1, 1024).describe('Syntheses running at once (all engines together).'),
  TTS_QUEUE_SIZE: int(32, 0, 10_000).describe('Syntheses waiting beyond TTS_PARALLEL; beyond that 429 with Retry-After.'),
  MAX_TTS_TEXT_CHARS: int(4096, 1, 1_000_000).describe('Longest text accepted for synthesis (characters; OpenAI allows 4096); longer gets 400.'),
  MAX_TTS_AUDIO_SECONDS: num(600, 1, 86_400).describe('Longest audio one synthesis may produce (seconds); speech beyond it is cut off.'),
  MAX_REFERENCE_AUDIO_BYTES: int(10_485_760, 1024, 268_435_456).describe('Largest reference (voice-cloning) audio clip accepted (bytes).'),
  MAX_REFERENCE_AUDIO_SECONDS: num(30, 1, 600).describe('Longest reference audio clip accepted (seconds; fish-speech recommends 10-30 s).'),
  FFMPEG_PATH: text('ffmpeg').describe('ffmpeg binary, used to encode mp3/opus/aac/flac and to change the tempo of fish-speech audio.'),

  // --- voice dialogue and session memory
  REDIS_URL: optionalText().describe('Redis for session memory shared by several replicas (redis://host:6379/0). Unset: sessions live in this process.'),
  SESSION_TTL_SECONDS: int(3600, 10, 31_536_000).describe('A session is forgotten this long after its last turn.'),
  SESSION_MAX_SESSIONS: int(10_000, 1, 10_000_000).describe('Sessions kept in process memory (least recently used dropped first; in-process store only).'),
  SESSION_MAX_STORED_TURNS: int(200, 2, 100_000).describe('Turns stored per session (oldest dropped first).'),
  SESSION_HISTORY_TURNS: int(20, 0, 10_000).describe('Most history turns (user and assistant messages) sent to the model with a new turn.'),
  SESSION_HISTORY_TOKENS: int(2048, 0, 1_000_000).describe('Most history sent to the model, in tokens (estimated at 4 characters per token); older turns are left out.'),
  RESPONSES_STORE_MAX_MB: int(256, 1, 1_048_576).describe('Process memory for stored /v1/responses objects (in-process store only; least recently used dropped first). With REDIS_URL, Redis holds them.'),
  SESSION_REDIS_FALLBACK: bool(false).describe('When Redis is unreachable, keep serving with in-process memory (and say so in responses) instead of answering 503.'),
  DIALOGUE_SYSTEM_PROMPT: text('You are a helpful, friendly assistant.').describe('System prompt of every dialogue turn.'),
  DIALOGUE_VOICE_PROMPT: text('Your reply will be spoken aloud: answer in one to three short sentences of plain spoken language, with no markdown, lists, emoji or code.').describe(
    'Added to the system prompt when the reply is spoken (audio in the response modalities).',
  ),
  DIALOGUE_TEXT_PROMPT: text('Answer concisely.').describe('Added to the system prompt when the reply is text only.'),
  DIALOGUE_PROMPTS_FILE: optionalText().describe('A JSON file {"system","voice","text"} overriding the three dialogue prompts (read at start-up).'),
  REALTIME_MAX_CONVERSATION_MB: num(8, 1, 1024).describe(
    'Memory one /v1/realtime connection\'s conversation may hold (item text, and audio not transcribed yet); past it the oldest items are dropped (a `conversation.item.deleted` event each), as the model only sees the latest ones anyway.',
  ),
  REALTIME_CLIENT_SECRET_TTL_SECONDS: int(600, 1, 7200).describe('Lifetime of an ephemeral /v1/realtime key from POST /v1/realtime/client_secrets (a request may ask for its own, up to 7200).'),
  DIALOGUE_MAX_TOKENS: int(256, 1, 1_048_576).describe('Default max_tokens of a dialogue reply (capped by LLM_MAX_TOKENS).'),

  // --- transcription jobs (asynchronous, durable with REDIS_URL)
  JOB_STORAGE_DIR: text('.cache/jobs').describe(
    'Where transcription jobs keep their audio, checkpoints and results: a directory every replica shares (a ReadWriteMany volume with several replicas).',
  ),
  JOB_MAX_UPLOAD_BYTES: int(536_870_912, 1024, 68_719_476_736).describe(
    'Largest audio file a transcription job accepts (bytes; default 512 MiB). Uploads are streamed to JOB_STORAGE_DIR, never held in memory; larger gets 413.',
  ),
  JOB_MAX_AUDIO_SECONDS: num(10_800, 1, 604_800).describe(
    'Longest audio a transcription job accepts (seconds, after decoding; default 3 h). The worker decodes it once (4 bytes per sample at 16 kHz: ~230 MB per hour, in memory while it decodes); longer fails the job with `audio_too_long`.',
  ),
  JOB_WORKER: bool(true).describe('Run transcription-job workers in this process. false: this replica only accepts and serves jobs (API replicas), others (JOB_WORKER=true) transcribe them.'),
  JOB_CONCURRENCY: int(1, 1, 64).describe('Transcription jobs one worker process runs at once (their windows share STT_PARALLEL).'),
  JOB_RESULT_TTL_SECONDS: int(86_400, 1, 31_536_000).describe('A finished (completed, failed, cancelled) job and its files are deleted this long after it finished.'),
  JOB_LOCK_SECONDS: num(30, 1, 3600).describe(
    'With REDIS_URL: a running job whose worker stops renewing its lock (killed, out of memory, node lost) is handed to another worker after about this long (BullMQ lockDuration and stalled check), and resumes from its last finished 30 s window.',
  ),
  JOB_MAX_STALLS: int(5, 0, 1000).describe('With REDIS_URL: how often one job may lose its worker before it is failed instead of resumed (BullMQ maxStalledCount).'),
  JOB_WEBHOOK_ALLOWED_HOSTS: optionalText().describe(
    'Hosts a job\'s `webhook_url` may point at (comma-separated host names or host:port, e.g. `hooks.example.com,ci.internal:8443`). Unset: webhooks are refused. Addresses are checked again when the hook is sent.',
  ),
  JOB_WEBHOOK_SECRET: optionalText().describe(
    'Key of the HMAC-SHA256 signature sent with every webhook (`X-Webhook-Signature: t=<unix seconds>,v1=<hex of HMAC(t + "." + body)>`). Required with JOB_WEBHOOK_ALLOWED_HOSTS.',
  ),
  JOB_WEBHOOK_TIMEOUT_SECONDS: num(10, 1, 300).describe('Timeout of one webhook delivery (it is tried 3 times, with backoff, on network errors and 5xx).'),
});

export type Config = z.output<typeof configSchema>;
export type ConfigInput = Partial<Record<keyof z.input<typeof configSchema>, string>>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Checks that span several variables. They run even when single fields failed, so every problem is listed. */
function crossFieldProblems(env: Record<string, string | undefined>): string[] {
  const problems: string[] = [];
  const isTrue = (v: string | undefined) => TRUE.has((v ?? '').trim().toLowerCase());
  const hasKeys = (list: string, file: string) => (env[list] ?? '').split(',').some((k) => k.trim() !== '') || Boolean(env[file]?.trim());
  if (isTrue(env.API_KEY_ENABLED) && !hasKeys('API_KEYS', 'API_KEYS_FILE') && !hasKeys('ADMIN_API_KEYS', 'ADMIN_API_KEYS_FILE')) {
    problems.push('API_KEYS: API_KEY_ENABLED=true needs at least one key in API_KEYS or API_KEYS_FILE');
  }
  for (const name of ['API_KEYS_FILE', 'ADMIN_API_KEYS_FILE']) {
    if (env[name]?.trim() && !fs.existsSync(env[name].trim())) problems.push(`${name}: file not found: ${env[name].trim()}`);
  }
  if (Boolean(env.TLS_CERT_FILE?.trim()) !== Boolean(env.TLS_KEY_FILE?.trim())) {
    problems.push('TLS_CERT_FILE: TLS needs both TLS_CERT_FILE and TLS_KEY_FILE');
  }
  for (const name of ['TLS_CERT_FILE', 'TLS_KEY_FILE']) {
    if (env[name]?.trim() && !fs.existsSync(env[name].trim())) problems.push(`${name}: file not found: ${env[name].trim()}`);
  }
  if (env.DIALOGUE_PROMPTS_FILE?.trim() && !fs.existsSync(env.DIALOGUE_PROMPTS_FILE.trim())) {
    problems.push(`DIALOGUE_PROMPTS_FILE: file not found: ${env.DIALOGUE_PROMPTS_FILE.trim()}`);
  }
  if (env.JOB_WEBHOOK_ALLOWED_HOSTS?.trim() && !env.JOB_WEBHOOK_SECRET?.trim()) {
    problems.push('JOB_WEBHOOK_SECRET: JOB_WEBHOOK_ALLOWED_HOSTS needs a secret to sign the webhooks with');
  }
  if (env.MODELS_FILE?.trim()) problems.push(...readModelsFile(env.MODELS_FILE.trim()).problems);
  if ((env.LLM_BACKEND ?? '').trim().toLowerCase() === 'openai' && !env.LLM_MODEL?.trim()) {
    problems.push('LLM_MODEL: LLM_BACKEND=openai needs the model name the remote server serves');
  }
  return problems;
}

/** Reads `.env` (when present) under the real environment: real variables win. */
export function readEnvironment(processEnv: NodeJS.ProcessEnv = process.env, envFile = '.env'): Record<string, string | undefined> {
  let fromFile: Record<string, string> = {};
  if (envFile && fs.existsSync(envFile)) fromFile = parseDotenv(fs.readFileSync(envFile));
  return { ...fromFile, ...processEnv };
}

/** Parses the configuration; throws a ConfigError listing every problem. */
export function loadConfig(env: Record<string, string | undefined> = readEnvironment()): Config {
  // Empty strings mean "unset" so `FOO=` in a .env file falls back to the default.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v.trim() !== ''));
  const result = configSchema.safeParse(cleaned);
  const problems = result.success
    ? []
    : result.error.issues.map((i) => {
        const name = i.path.join('.');
        const value = cleaned[name];
        const shown = value === undefined || /KEY|TOKEN|SECRET/.test(name) ? '' : ` (got "${value}")`;
        return `${name}: ${i.message}${shown}`;
      });
  problems.push(...crossFieldProblems(cleaned));
  if (problems.length > 0 || !result.success) throw new ConfigError(problems);
  return result.data;
}

/**
 * `30s`, `5m`, `1h`, `250ms`, `90` (seconds) → milliseconds; a negative value, or one longer than a
 * timer can hold (MAX_KEEP_ALIVE_MS), → -1 (forever, as Ollama: never an immediate unload).
 */
export function durationMs(value: string): number {
  const match = /^(-?\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value);
  if (!match) return -1;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(match[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return keepAliveMs(Math.round(Number(match[1]) * unit));
}

/** Cores this process may use. */
export function usableCores(): number {
  return Math.max(1, typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length);
}

/**
 * Compute threads when a setting says 0: the usable cores less one, so the event loop and the
 * binding's own threads keep a core. Measured on a 2-core machine: llama.cpp with 2 threads made
 * 71 tokens/s, with 1 thread 807 tokens/s (its threads spin-wait on each other).
 */
export function computeThreads(setting: number): number {
  return setting > 0 ? setting : Math.max(1, usableCores() - 1);
}

/** The Hugging Face token, from either variable name. */
export function hfToken(config: Config): string | undefined {
  return config.HUGGING_FACE_HUB_TOKEN ?? config.HF_TOKEN;
}
