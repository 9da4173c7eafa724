import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { OPTIMIZER_VERSION, mergeTimingCaches } from '../../../../libs/native/index.js';
import { ObjectStorage, timingCacheKey, timingCachePrefix } from '../../../../libs/storage/index.js';
import type { Logger } from '../worker-logger.js';

/** Newest files merged at most; a farm has about one per GPU worker. */
const MAX_FILES = 256;
/** A worker's cache is a few hundred bytes per layer signature; anything this large is not one. */
const MAX_FILE_BYTES = 16 * 1024 * 1024;

/**
 * The timing cache the workers of one optimizer version and SM share through S3: each
 * worker publishes its own merged file under timing-cache/<version>/<sm>/<worker>.tsv, and
 * a build starts from the merge of all of them, so a layer one worker timed is not timed
 * again by another. Merging keeps the faster entry per key (commutative, idempotent), so
 * concurrent publishers never lose each other's measurements.
 */
export class TimingCacheStore {
  constructor(
    private readonly storage: ObjectStorage,
    private readonly workerId: string,
    private readonly workDir: string,
    private readonly log: Logger,
  ) {}

  /** Merges every published cache for the target into `dest`; null when there is none yet (nothing written). */
  async fetch(target: string, dest: string, signal?: AbortSignal): Promise<{ files: number; entries: number } | null> {
    const objects = (await this.storage.list(timingCachePrefix(OPTIMIZER_VERSION, target), 10_000))
      .filter((o) => o.key.endsWith('.tsv') && o.size <= MAX_FILE_BYTES)
      .sort((a, b) => (b.lastModified?.getTime() ?? 0) - (a.lastModified?.getTime() ?? 0))
      .slice(0, MAX_FILES);
    if (!objects.length) return null;
    const dir = await mkdtemp(path.join(this.workDir, 'timing-cache-'));
    try {
      const files: string[] = [];
      for (const [i, o] of objects.entries()) {
        const file = path.join(dir, `${i}.tsv`);
        try {
          await this.storage.downloadToFile(o.key, file);
          files.push(file);
        } catch (err) {
          // Gone between the listing and the download (a worker republished): the others still count.
          this.log.warn({ key: o.key, err: (err as Error).message }, 'timing cache file skipped');
        }
      }
      const merged = await this.mergeSkippingBad(dest, files, signal);
      return merged ? { files: merged.inputs, entries: merged.entries } : null;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** Publishes this worker's cache (everything it merged and measured) for the target. */
  async publish(target: string, file: string): Promise<string> {
    const key = timingCacheKey(OPTIMIZER_VERSION, target, this.safeWorkerId());
    await this.storage.uploadFile(key, file, { contentType: 'text/tab-separated-values' });
    return key;
  }

  /** One unreadable file (another optimizer's format, a partial write) must not cost the others. */
  private async mergeSkippingBad(dest: string, files: string[], signal?: AbortSignal) {
    if (!files.length) return null;
    try {
      return await mergeTimingCaches(dest, files, { signal });
    } catch (err) {
      const good: string[] = [];
      for (const f of files) {
        try {
          await mergeTimingCaches(`${dest}.probe`, [f], { signal });
          good.push(f);
        } catch (single) {
          this.log.warn({ err: (single as Error).message }, 'unreadable timing cache file skipped');
        }
      }
      await rm(`${dest}.probe`, { force: true });
      if (!good.length) return null;
      if (good.length === files.length) throw err;
      return mergeTimingCaches(dest, good, { signal });
    }
  }

  private safeWorkerId(): string {
    return this.workerId.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 128).replace(/^\.+$/, '_') || 'worker';
  }
}
