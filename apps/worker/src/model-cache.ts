import { readdir, stat, unlink, utimes } from 'node:fs/promises';
import path from 'node:path';
import type { ObjectStorage } from '../../../libs/storage/index.js';
import type { Logger } from './worker-logger.js';

const SHA256_HEX = /^[0-9a-f]{64}$/;
/**
 * Worker processes of one host may share WORK_DIR: a model another process touched
 * this recently may be about to be read by it, so pruning leaves it alone.
 */
const RECENT_USE_MS = 10 * 60_000;
/** Downloads interrupted by a crash leave `<file>.part-<uuid>`; older ones are garbage. */
const STALE_PART_MS = 24 * 3600_000;

export interface CachedModel {
  path: string;
  /** Unpins the model so pruning may remove it. Idempotent. */
  release(): void;
}

/**
 * Models on local disk, by sha256: the targets of one build running in the same
 * process share one download, and concurrent requests for one sha share one transfer.
 * Files are written atomically after their digest matched, so a present file is good.
 * Models in use are pinned; past the byte budget the least recently used go.
 */
export class ModelCache {
  private readonly inflight = new Map<string, Promise<string>>();
  private readonly pins = new Map<string, number>();
  private downloadCount = 0;
  private hitCount = 0;
  private pruning: Promise<void> | null = null;

  constructor(
    private readonly storage: ObjectStorage,
    private readonly dir: string,
    private readonly log: Logger,
    private readonly maxBytes = Number.POSITIVE_INFINITY,
  ) {}

  get stats(): { downloads: number; hits: number } {
    return { downloads: this.downloadCount, hits: this.hitCount };
  }

  /** The model with this digest on local disk (downloading `key` when not cached), pinned until released. */
  async acquire(key: string, sha256: string): Promise<CachedModel> {
    if (!SHA256_HEX.test(sha256)) throw new Error(`not a sha256 digest: "${sha256}"`);
    this.pins.set(sha256, (this.pins.get(sha256) ?? 0) + 1);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      const left = (this.pins.get(sha256) ?? 1) - 1;
      if (left > 0) this.pins.set(sha256, left);
      else this.pins.delete(sha256);
    };
    try {
      let pending = this.inflight.get(sha256);
      if (pending) this.hitCount++;
      else {
        pending = this.fetch(key, sha256).finally(() => this.inflight.delete(sha256));
        this.inflight.set(sha256, pending);
      }
      return { path: await pending, release };
    } catch (err) {
      release();
      throw err;
    }
  }

  /** Removes least recently used, unpinned models until the cache fits its budget, and stale partial downloads. */
  prune(): Promise<void> {
    this.pruning ??= this.pruneNow()
      .catch((err: unknown) => this.log.warn({ err }, 'model cache pruning failed'))
      .finally(() => {
        this.pruning = null;
      });
    return this.pruning;
  }

  private async pruneNow(): Promise<void> {
    const now = Date.now();
    const entries: { file: string; sha: string; size: number; mtimeMs: number }[] = [];
    for (const name of await readdir(this.dir).catch(() => [] as string[])) {
      const file = path.join(this.dir, name);
      const st = await stat(file).catch(() => null);
      if (!st?.isFile()) continue;
      if (name.includes('.part-')) {
        if (now - st.mtimeMs > STALE_PART_MS) await unlink(file).catch(() => undefined);
        continue;
      }
      const m = /^([0-9a-f]{64})\.onnx$/.exec(name);
      if (m) entries.push({ file, sha: m[1], size: st.size, mtimeMs: st.mtimeMs });
    }
    let total = entries.reduce((sum, e) => sum + e.size, 0);
    entries.sort((a, b) => a.mtimeMs - b.mtimeMs);
    for (const e of entries) {
      if (total <= this.maxBytes) break;
      if (this.pins.has(e.sha) || this.inflight.has(e.sha) || now - e.mtimeMs < RECENT_USE_MS) continue;
      await unlink(e.file).catch(() => undefined);
      total -= e.size;
      this.log.info({ modelSha256: e.sha, size: e.size }, 'model evicted from the cache');
    }
  }

  private async fetch(key: string, sha256: string): Promise<string> {
    const file = path.join(this.dir, `${sha256}.onnx`);
    if (await isFile(file)) {
      this.hitCount++;
      // mtime is the cache's "last used": a hit makes the model the newest.
      const now = new Date();
      await utimes(file, now, now).catch(() => undefined);
      return file;
    }
    const started = Date.now();
    const { size } = await this.storage.downloadToFile(key, file, { expectedSha256: sha256 });
    this.downloadCount++;
    this.log.info({ modelKey: key, size, ms: Date.now() - started }, 'model downloaded');
    return file;
  }
}

async function isFile(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}
