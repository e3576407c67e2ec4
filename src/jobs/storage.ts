/**
 * Where transcription jobs keep their files (the upload, the decoded audio, per-window checkpoints,
 * the result, the job record): a store shared by every replica. The port is small — whole objects,
 * byte ranges, listing one level, deleting a prefix — so an S3-compatible adapter can implement it
 * (objects for files, ranged GETs for windows, ListObjectsV2 with a delimiter for listing); this
 * build has the directory adapter (JOB_STORAGE_DIR, a volume shared by the replicas).
 * Keys are `/`-separated relative paths made by the service, never by clients.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';

export interface JobStorage {
  readonly kind: string;
  /** Streams `source` into `key` (visible only once complete); returns the bytes written. */
  writeStream(key: string, source: Readable): Promise<number>;
  /** Writes a whole object atomically (readers see the old or the new one, never a part). */
  write(key: string, data: Uint8Array | string): Promise<void>;
  /**
   * Writes a whole object only if the key is absent; false when it was there. Of two racing
   * creates exactly one succeeds (what decides a job's ending between a cancel and its worker);
   * S3: a PUT with `If-None-Match: *`.
   */
  create(key: string, data: Uint8Array | string): Promise<boolean>;
  /** A whole object; undefined when absent. */
  read(key: string): Promise<Buffer | undefined>;
  /** `length` bytes from `start` (fewer at the end). */
  readRange(key: string, start: number, length: number): Promise<Buffer>;
  exists(key: string): Promise<boolean>;
  /** Names directly under `prefix` (objects and sub-prefixes), unordered; [] when none. */
  list(prefix: string): Promise<string[]>;
  /** Deletes an object or everything under a prefix. */
  remove(key: string): Promise<void>;
}

/** Keys as files under one directory; writes go to a temporary name and are renamed into place. */
export class DirectoryStorage implements JobStorage {
  readonly kind = 'directory';
  private readonly root: string;

  constructor(root: string) {
    // created on the first write: a directory that is not writable (yet) fails submissions with a
    // 503, never the process's start
    this.root = path.resolve(root);
  }

  private file(key: string): string {
    const file = path.resolve(this.root, key);
    // keys are ours, but a slip must never reach outside the store
    if (file !== this.root && !file.startsWith(this.root + path.sep)) throw new Error(`storage key outside the store: ${key}`);
    return file;
  }

  private async temporary(key: string): Promise<{ file: string; tmp: string }> {
    const file = this.file(key);
    await fs.promises.mkdir(path.dirname(file), { recursive: true });
    return { file, tmp: `${file}.${randomBytes(6).toString('hex')}.tmp` };
  }

  async writeStream(key: string, source: Readable): Promise<number> {
    const { file, tmp } = await this.temporary(key);
    const out = fs.createWriteStream(tmp);
    try {
      await pipeline(source, out);
      await fs.promises.rename(tmp, file);
      return out.bytesWritten;
    } catch (error) {
      await fs.promises.rm(tmp, { force: true });
      throw error;
    }
  }

  async write(key: string, data: Uint8Array | string): Promise<void> {
    const { file, tmp } = await this.temporary(key);
    try {
      await fs.promises.writeFile(tmp, data);
      await fs.promises.rename(tmp, file);
    } catch (error) {
      await fs.promises.rm(tmp, { force: true });
      throw error;
    }
  }

  async create(key: string, data: Uint8Array | string): Promise<boolean> {
    const { file, tmp } = await this.temporary(key);
    try {
      await fs.promises.writeFile(tmp, data);
      // link(2) fails with EEXIST when the name is taken, atomically (also on NFS), and never shows a partial file
      await fs.promises.link(tmp, file);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw error;
    } finally {
      await fs.promises.rm(tmp, { force: true });
    }
  }

  async read(key: string): Promise<Buffer | undefined> {
    try {
      return await fs.promises.readFile(this.file(key));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  async readRange(key: string, start: number, length: number): Promise<Buffer> {
    const handle = await fs.promises.open(this.file(key), 'r');
    try {
      const buffer = Buffer.alloc(length);
      const { bytesRead } = await handle.read(buffer, 0, length, start);
      return buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  }

  async exists(key: string): Promise<boolean> {
    return fs.promises.access(this.file(key)).then(
      () => true,
      () => false,
    );
  }

  async list(prefix: string): Promise<string[]> {
    try {
      return (await fs.promises.readdir(this.file(prefix))).filter((name) => !name.endsWith('.tmp'));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
      throw error;
    }
  }

  async remove(key: string): Promise<void> {
    await fs.promises.rm(this.file(key), { recursive: true, force: true });
  }
}
