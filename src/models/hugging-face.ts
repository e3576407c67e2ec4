/**
 * `hf:` model URIs resolved into the Hugging Face cache, laid out as huggingface_hub does
 * (`$HF_HOME/hub/models--org--repo/{blobs,snapshots/<commit>,refs/<revision>}`), so files pulled
 * by `huggingface-cli` are reused and ours are visible to it. Downloads are bounded: a dead
 * network fails at once, a stalled connection after STALL_MS, the whole file after `timeoutMs`.
 *
 * URI forms: `hf:<org>/<repo>/<path/in/repo>` and `hf:<org>/<repo>@<revision>/<path>`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { Logger } from 'pino';
import { hfToken, type Config } from '../config.ts';
import { ModelUnavailableError } from './errors.ts';
import { createProgress } from './progress.ts';

export interface HfFile {
  repo: string;
  revision: string;
  file: string;
}

export interface HfOptions {
  /** `$HF_HOME`; the cache is `<home>/hub`. */
  home?: string;
  token?: string;
  endpoint?: string;
  download: boolean;
  timeoutMs: number;
  logger: Logger;
  /** Shown in remedies: the variable that named this model. */
  variable: string;
}

/** Where and how models are fetched: the part of HfOptions that comes from the configuration. */
export type HfSettings = Pick<HfOptions, 'home' | 'token' | 'endpoint' | 'download' | 'timeoutMs'>;

export function hfSettings(config: Config): HfSettings {
  return { home: config.HF_HOME, token: hfToken(config), endpoint: config.HF_ENDPOINT, download: config.MODEL_DOWNLOAD, timeoutMs: config.MODEL_DOWNLOAD_TIMEOUT_SECONDS * 1000 };
}

const STALL_MS = 30_000;

export function defaultHfHome(): string {
  return process.env.HF_HOME || path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'huggingface');
}

export function parseHfUri(uri: string): HfFile {
  const match = /^hf:([\w.-]+)\/([\w.-]+)(?:@([\w./-]+?))?\/(.+)$/.exec(uri.trim());
  if (!match) throw new Error(`not an hf: URI (expected hf:<org>/<repo>/<file>): ${uri}`);
  const [, org, repo, revision, file] = match as unknown as [string, string, string, string | undefined, string];
  if (file.split('/').some((p) => p === '..' || p === '')) throw new Error(`bad file path in ${uri}`);
  return { repo: `${org}/${repo}`, revision: revision ?? 'main', file };
}

function repoDir(home: string, repo: string): string {
  return path.join(home, 'hub', `models--${repo.replace('/', '--')}`);
}

/** The cached file for `ref`, if the cache has it. Never touches the network. */
export function findInCache(home: string, ref: HfFile): string | undefined {
  const dir = repoDir(home, ref.repo);
  const refFile = path.join(dir, 'refs', ref.revision);
  const commit = fs.existsSync(refFile) ? fs.readFileSync(refFile, 'utf8').trim() : /^[0-9a-f]{40}$/.test(ref.revision) ? ref.revision : undefined;
  if (commit) {
    const candidate = path.join(dir, 'snapshots', commit, ref.file);
    if (fs.existsSync(candidate)) return candidate;
  }
  return undefined;
}

async function fetchBounded(url: string, init: RequestInit, ms: number): Promise<Response> {
  return fetch(url, { ...init, signal: AbortSignal.any([AbortSignal.timeout(ms), ...(init.signal ? [init.signal] : [])]) });
}

/** Downloads `ref` into the cache (if needed) and returns the local path. */
export async function resolveHfFile(uri: string, options: HfOptions): Promise<string> {
  const ref = parseHfUri(uri);
  const home = options.home ?? defaultHfHome();
  const cached = findInCache(home, ref);
  if (cached) return cached;
  const pullHint = `Run \`npm run pull\` where the network is reachable, or download ${ref.file} from huggingface.co/${ref.repo} and set ${options.variable} to its path.`;
  if (!options.download) throw new ModelUnavailableError(`${uri} is not in the Hugging Face cache (${path.join(home, 'hub')}) and MODEL_DOWNLOAD=false.`, pullHint);

  const endpoint = (options.endpoint ?? 'https://huggingface.co').replace(/\/+$/, '');
  const url = `${endpoint}/${ref.repo}/resolve/${encodeURIComponent(ref.revision)}/${ref.file.split('/').map(encodeURIComponent).join('/')}`;
  const auth: Record<string, string> = options.token ? { Authorization: `Bearer ${options.token}` } : {};
  const deadline = AbortSignal.timeout(options.timeoutMs);

  let first: Response;
  try {
    first = await fetchBounded(url, { headers: auth, redirect: 'manual', signal: deadline }, STALL_MS);
  } catch (error) {
    throw new ModelUnavailableError(`Could not reach ${endpoint} to download ${uri} (${(error as Error).cause ?? (error as Error).message}).`, pullHint);
  }
  if (first.status === 401 || first.status === 403) {
    throw new ModelUnavailableError(`${endpoint} refused ${uri} (HTTP ${first.status}): the repo is gated or private.`, 'Accept its license on huggingface.co and set HUGGING_FACE_HUB_TOKEN (or HF_TOKEN) to a token that can read it.');
  }
  if (first.status === 404) throw new ModelUnavailableError(`${uri} does not exist (HTTP 404 from ${endpoint}).`, `Check ${options.variable}: hf:<org>/<repo>/<file>.`);
  const commit = first.headers.get('x-repo-commit') ?? (/^[0-9a-f]{40}$/.test(ref.revision) ? ref.revision : undefined);
  const etag = (first.headers.get('x-linked-etag') ?? first.headers.get('etag') ?? '').replace(/^W\//, '').replace(/"/g, '');
  let body = first;
  if (first.status >= 300 && first.status < 400) {
    const location = first.headers.get('location');
    if (!location) throw new ModelUnavailableError(`${endpoint} redirected ${uri} without a location.`, pullHint);
    const next = new URL(location, url);
    const sameHost = next.host === new URL(url).host;
    await first.body?.cancel();
    body = await fetchBounded(next.toString(), { headers: sameHost ? auth : {}, signal: deadline }, STALL_MS);
  }
  if (!body.ok || !body.body) throw new ModelUnavailableError(`Downloading ${uri} failed: HTTP ${body.status}.`, pullHint);
  if (!commit || !etag) throw new ModelUnavailableError(`${endpoint} sent no commit/etag for ${uri}; not a Hugging Face endpoint?`, pullHint);

  const dir = repoDir(home, ref.repo);
  const blob = path.join(dir, 'blobs', etag);
  const partial = `${blob}.incomplete`;
  fs.mkdirSync(path.dirname(blob), { recursive: true });
  const total = Number(body.headers.get('content-length')) || undefined;
  const progress = createProgress(ref.file, total, options.logger);
  const out = fs.createWriteStream(partial);
  let received = 0;
  let stall: NodeJS.Timeout | undefined;
  const abort = new AbortController();
  const armStall = () => {
    clearTimeout(stall);
    stall = setTimeout(() => abort.abort(new Error(`no data for ${STALL_MS / 1000} s`)), STALL_MS);
  };
  try {
    armStall();
    const source = Readable.fromWeb(body.body as WebReadableStream, { signal: AbortSignal.any([abort.signal, deadline]) });
    for await (const chunk of source) {
      armStall();
      received += (chunk as Buffer).length;
      if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
      progress.update(received);
    }
    await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
  } catch (error) {
    out.destroy();
    fs.rmSync(partial, { force: true });
    throw new ModelUnavailableError(`Downloading ${uri} stopped after ${received} bytes (${(error as Error).message}).`, pullHint);
  } finally {
    clearTimeout(stall);
  }
  if (total !== undefined && received !== total) {
    fs.rmSync(partial, { force: true });
    throw new ModelUnavailableError(`Downloading ${uri} ended early (${received} of ${total} bytes).`, pullHint);
  }
  progress.done();
  fs.renameSync(partial, blob);
  const snapshot = path.join(dir, 'snapshots', commit, ref.file);
  fs.mkdirSync(path.dirname(snapshot), { recursive: true });
  fs.rmSync(snapshot, { force: true });
  fs.symlinkSync(path.relative(path.dirname(snapshot), blob), snapshot);
  fs.mkdirSync(path.join(dir, 'refs'), { recursive: true });
  if (!/^[0-9a-f]{40}$/.test(ref.revision)) fs.writeFileSync(path.join(dir, 'refs', ref.revision), commit);
  return snapshot;
}
