import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import type { AppConfig } from '../../libs/config/index.js';
import { ObjectStorage, PART_SIZE, StorageError, modelKey, planKey, sha256OfFile } from '../../libs/storage/index.js';
import { cleanupTestConfig, testConfig } from '../helpers/env.js';

const sha256 = (buf: Buffer) => createHash('sha256').update(buf).digest('hex');

describe('ObjectStorage', () => {
  let config: AppConfig;
  let storage: ObjectStorage;
  let dir: string;

  async function keysUnder(prefix: string): Promise<string[]> {
    const client = new S3Client({
      endpoint: config.s3.endpoint,
      region: config.s3.region,
      forcePathStyle: true,
      credentials: { accessKeyId: config.s3.accessKeyId!, secretAccessKey: config.s3.secretAccessKey! },
    });
    try {
      const out = await client.send(new ListObjectsV2Command({ Bucket: config.s3.bucket, Prefix: prefix }));
      return (out.Contents ?? []).map((o) => o.Key!);
    } finally {
      client.destroy();
    }
  }

  beforeAll(async () => {
    config = await testConfig();
    storage = new ObjectStorage(config.s3);
    await storage.ensureBucket();
    dir = await mkdtemp(path.join(os.tmpdir(), 'pf-storage-'));
  });

  afterAll(async () => {
    await storage?.close();
    await rm(dir, { recursive: true, force: true });
    await cleanupTestConfig();
  });

  it('round-trips a multipart upload byte for byte', async () => {
    const data = randomBytes(2 * PART_SIZE + 123_457); // three parts
    const src = path.join(dir, 'big.bin');
    await writeFile(src, data);
    const digest = sha256(data);
    const key = modelKey(digest);

    const stored = await storage.uploadFile(key, src, { sha256: digest, contentType: 'application/onnx' });
    expect(stored).toEqual({ key, size: data.length, sha256: digest });
    expect(await storage.head(key)).toEqual({ size: data.length, contentType: 'application/onnx', metadata: { sha256: digest } });
    expect(await storage.exists(key)).toBe(true);

    const dst = path.join(dir, 'nested', 'copy.bin');
    expect(await storage.downloadToFile(key, dst, { expectedSha256: digest })).toEqual({ size: data.length, sha256: digest });
    expect((await readFile(dst)).equals(data)).toBe(true);
    // No temp files left next to the download.
    expect(await readdir(path.dirname(dst))).toEqual(['copy.bin']);
  });

  it('rejects a file whose sha256 is not the one given, before uploading it', async () => {
    const src = path.join(dir, 'wrong.bin');
    await writeFile(src, randomBytes(1000));
    const claimed = 'f'.repeat(64);
    await expect(storage.uploadFile(modelKey(claimed), src, { sha256: claimed })).rejects.toMatchObject({ code: 'E_SHA_MISMATCH' });
    expect(await storage.exists(modelKey(claimed))).toBe(false);
  });

  it('rejects a stream whose sha256 is not the one given, leaving the key untouched', async () => {
    const good = randomBytes(3000);
    const key = 'plans/stream-target.plan';
    await storage.uploadStream(key, Readable.from([good]));
    const err = await storage.uploadStream(key, Readable.from([randomBytes(PART_SIZE + 10)]), { sha256: sha256(good) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).code).toBe('E_SHA_MISMATCH');
    const dst = path.join(dir, 'stream-target.plan');
    await storage.downloadToFile(key, dst, { expectedSha256: sha256(good) });
    expect((await readFile(dst)).equals(good)).toBe(true);
    expect(await keysUnder('staging/')).toEqual([]);
  });

  it('uploads a verified stream to its key', async () => {
    const data = randomBytes(PART_SIZE + 1);
    const key = planKey(sha256(data));
    const stored = await storage.uploadStream(key, Readable.from([data.subarray(0, 1000), data.subarray(1000)]), { sha256: sha256(data) });
    expect(stored).toEqual({ key, size: data.length, sha256: sha256(data) });
    expect((await storage.head(key))?.size).toBe(data.length);
    expect(await keysUnder('staging/')).toEqual([]);
  });

  it('stores a stream of unknown digest at its content address', async () => {
    const data = randomBytes(50_000);
    const first = await storage.uploadStreamContentAddressed(Readable.from([data]), modelKey);
    expect(first).toEqual({ key: modelKey(sha256(data)), size: data.length, sha256: sha256(data), existed: false });
    expect((await storage.head(first.key))?.metadata.sha256).toBe(sha256(data));
    const second = await storage.uploadStreamContentAddressed(Readable.from([data]), modelKey);
    expect(second.existed).toBe(true);
    expect(await keysUnder('staging/')).toEqual([]);
  });

  it('fails an upload whose source stream errors', async () => {
    const failing = new Readable({
      read() {
        this.destroy(new Error('disk on fire'));
      },
    });
    await expect(storage.uploadStream('plans/failing.plan', failing)).rejects.toThrow('disk on fire');
    expect(await storage.exists('plans/failing.plan')).toBe(false);
  });

  it('refuses a download whose sha256 does not match and leaves no file', async () => {
    const data = randomBytes(4096);
    await storage.uploadStream('models/check.onnx', Readable.from([data]));
    const dst = path.join(dir, 'check.onnx');
    await expect(storage.downloadToFile('models/check.onnx', dst, { expectedSha256: '0'.repeat(64) })).rejects.toMatchObject({ code: 'E_SHA_MISMATCH' });
    expect(existsSync(dst)).toBe(false);
    expect((await readdir(dir)).filter((f) => f.startsWith('check.onnx'))).toEqual([]);
  });

  it('serves presigned URLs over plain HTTP', async () => {
    const data = randomBytes(70_000);
    const key = planKey(sha256(data));
    await storage.uploadStream(key, Readable.from([data]));
    const url = await storage.presignGet(key, 60, { downloadName: 'resnet-v3-sm_90.plan' });
    expect(url).toContain('X-Amz-Signature=');
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(data)).toBe(true);
    expect(res.headers.get('content-disposition')).toBe('attachment; filename="resnet-v3-sm_90.plan"');
    await expect(storage.presignGet(key, 0)).rejects.toMatchObject({ code: 'E_INVALID' });
  });

  it('reports missing objects clearly and deletes idempotently', async () => {
    expect(await storage.head('models/missing.onnx')).toBeNull();
    expect(await storage.exists('models/missing.onnx')).toBe(false);
    await expect(storage.getObjectStream('models/missing.onnx')).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
    await expect(storage.downloadToFile('models/missing.onnx', path.join(dir, 'missing'))).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
    await storage.uploadStream('tmp/x', Readable.from([Buffer.from('x')]));
    await storage.delete('tmp/x');
    await storage.delete('tmp/x');
    expect(await storage.exists('tmp/x')).toBe(false);
  });

  it('builds content-addressed keys only from sha256 digests', () => {
    expect(modelKey('a'.repeat(64))).toBe(`models/${'a'.repeat(64)}.onnx`);
    expect(planKey('b'.repeat(64))).toBe(`plans/${'b'.repeat(64)}.plan`);
    expect(() => planKey('../etc/passwd')).toThrow(StorageError);
  });

  it('hashes files like sha256sum', async () => {
    const data = randomBytes(12345);
    await writeFile(path.join(dir, 'h.bin'), data);
    expect(await sha256OfFile(path.join(dir, 'h.bin'))).toEqual({ size: data.length, sha256: sha256(data) });
  });

  it('creates a missing bucket and closes idempotently', async () => {
    const other = new ObjectStorage({ ...config.s3, bucket: `${config.s3.bucket}-extra` });
    await other.ensureBucket();
    await other.ensureBucket();
    await other.uploadStream('k', Readable.from([Buffer.from('hello')]));
    expect(await other.exists('k')).toBe(true);
    await other.close();
    await other.close();
    await expect(other.exists('k')).rejects.toMatchObject({ code: 'E_CLOSED' });
  });
});
