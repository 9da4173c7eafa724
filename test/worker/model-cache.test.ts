import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pino } from 'pino';
import { ModelCache } from '../../apps/worker/src/index.js';
import type { AppConfig } from '../../libs/config/index.js';
import { ObjectStorage, modelKey } from '../../libs/storage/index.js';
import { cleanupTestConfig, testConfig } from '../helpers/env.js';

const sha256 = (buf: Buffer) => createHash('sha256').update(buf).digest('hex');
const log = pino({ level: 'silent' });

describe('ModelCache', () => {
  let config: AppConfig;
  let storage: ObjectStorage;

  async function upload(bytes: number) {
    const data = randomBytes(bytes);
    await storage.uploadStream(modelKey(sha256(data)), Readable.from([data]), { sha256: sha256(data) });
    return { data, sha: sha256(data), key: modelKey(sha256(data)) };
  }

  /** Makes a cached file look last used `minutesAgo` minutes ago. */
  async function age(dir: string, sha: string, minutesAgo: number) {
    const t = new Date(Date.now() - minutesAgo * 60_000);
    await utimes(path.join(dir, `${sha}.onnx`), t, t);
  }

  beforeAll(async () => {
    config = await testConfig();
    storage = new ObjectStorage(config.s3);
  });

  afterAll(async () => {
    await storage?.close();
    await cleanupTestConfig();
  });

  it('downloads a model once for concurrent and later requests', async () => {
    const cache = new ModelCache(storage, path.join(config.workDir, 'once'), log);
    const m = await upload(300_000);
    const got = await Promise.all([1, 2, 3].map(() => cache.acquire(m.key, m.sha)));
    expect(new Set(got.map((g) => g.path)).size).toBe(1);
    expect(cache.stats).toEqual({ downloads: 1, hits: 2 });
    const later = await cache.acquire(m.key, m.sha);
    expect(later.path).toBe(got[0].path);
    expect(cache.stats.downloads).toBe(1);
  });

  it('refuses a model whose bytes do not match its digest', async () => {
    const cache = new ModelCache(storage, path.join(config.workDir, 'mismatch'), log);
    const m = await upload(1000);
    await expect(cache.acquire(m.key, 'e'.repeat(64))).rejects.toMatchObject({ code: 'E_SHA_MISMATCH' });
    await expect(cache.acquire(m.key, 'nope')).rejects.toThrow(/sha256/);
    // A failed download is not cached: the right digest still works.
    await expect(cache.acquire(m.key, m.sha)).resolves.toMatchObject({ path: expect.stringContaining(m.sha) });
  });

  it('evicts least recently used, unpinned models past its budget', async () => {
    const dir = path.join(config.workDir, 'lru');
    const cache = new ModelCache(storage, dir, log, 250_000);
    const [a, b, c] = [await upload(100_000), await upload(100_000), await upload(100_000)];
    const pinned = await cache.acquire(a.key, a.sha);
    for (const m of [b, c]) (await cache.acquire(m.key, m.sha)).release();
    await age(dir, a.sha, 60);
    await age(dir, b.sha, 30);
    await age(dir, c.sha, 20);
    await writeFile(path.join(dir, `${c.sha}.onnx.part-crashed`), 'x');
    await utimes(path.join(dir, `${c.sha}.onnx.part-crashed`), new Date(0), new Date(0));

    await cache.prune();
    // a is the oldest but pinned; b goes; the budget is then met and c stays.
    expect(existsSync(path.join(dir, `${a.sha}.onnx`))).toBe(true);
    expect(existsSync(path.join(dir, `${b.sha}.onnx`))).toBe(false);
    expect(existsSync(path.join(dir, `${c.sha}.onnx`))).toBe(true);
    expect(existsSync(path.join(dir, `${c.sha}.onnx.part-crashed`))).toBe(false);

    pinned.release();
    pinned.release(); // idempotent
    const d = await upload(100_000);
    (await cache.acquire(d.key, d.sha)).release();
    await age(dir, d.sha, 15);
    await cache.prune();
    expect(existsSync(path.join(dir, `${a.sha}.onnx`))).toBe(false);
    expect(existsSync(path.join(dir, `${c.sha}.onnx`))).toBe(true);
    expect(existsSync(path.join(dir, `${d.sha}.onnx`))).toBe(true);
  });

  it('keeps models used in the last minutes, even past the budget', async () => {
    const dir = path.join(config.workDir, 'recent');
    const cache = new ModelCache(storage, dir, log, 1);
    const m = await upload(10_000);
    (await cache.acquire(m.key, m.sha)).release();
    await cache.prune();
    expect(existsSync(path.join(dir, `${m.sha}.onnx`))).toBe(true);
  });
});
