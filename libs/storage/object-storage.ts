import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
  UploadPartCopyCommand,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { S3Config } from '../config/index.js';
import { Sha256Meter } from './sha256-meter.js';
import { StorageError } from './storage-error.js';

export const PART_SIZE = 16 * 1024 * 1024;
export const UPLOAD_QUEUE_SIZE = 4;
/** Largest object a single CopyObject may copy. */
const MAX_SINGLE_COPY = 5 * 1024 ** 3;
/** Objects whose sha256 is not known up front land here first, then are copied to their final key. */
const STAGING_PREFIX = 'staging/';

export interface UploadOptions {
  contentType?: string;
  /** Expected sha256 (hex); the upload fails with E_SHA_MISMATCH and leaves no object when it differs. */
  sha256?: string;
  metadata?: Record<string, string>;
}

export interface StoredObject {
  key: string;
  size: number;
  sha256: string;
}

export interface ObjectHead {
  size: number;
  contentType?: string;
  /** User metadata; uploads through this class carry `sha256`. */
  metadata: Record<string, string>;
}

/** The farm's S3 bucket: models and plans, content-addressed. */
export class ObjectStorage {
  readonly bucket: string;
  private readonly client: S3Client;
  private closed = false;

  constructor(cfg: S3Config) {
    this.bucket = cfg.bucket;
    const clientConfig: S3ClientConfig = {
      region: cfg.region,
      endpoint: cfg.endpoint,
      forcePathStyle: cfg.forcePathStyle,
      // Checksums "when supported" add trailing CRC frames to streamed bodies, which S3-compatible servers store as data.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    };
    if (cfg.accessKeyId && cfg.secretAccessKey) {
      clientConfig.credentials = { accessKeyId: cfg.accessKeyId, secretAccessKey: cfg.secretAccessKey };
    }
    this.client = new S3Client(clientConfig);
  }

  /** Creates the bucket when missing (dev and tests; production buckets are provisioned). */
  async ensureBucket(): Promise<void> {
    this.checkOpen();
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return;
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    try {
      await this.client.send(new CreateBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      const name = (err as { name?: string }).name;
      if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') throw err;
    }
  }

  /** Idempotent. */
  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.client.destroy();
    }
    return Promise.resolve();
  }

  /**
   * Uploads a local file (multipart above 16 MiB). With `sha256`, the file is
   * hashed before anything is sent, so a wrong digest never reaches the bucket.
   */
  async uploadFile(key: string, filePath: string, opts: UploadOptions = {}): Promise<StoredObject> {
    this.checkOpen();
    if (opts.sha256 !== undefined) {
      const actual = await sha256OfFile(filePath);
      if (actual.sha256 !== opts.sha256) {
        throw new StorageError('E_SHA_MISMATCH', `sha256 of ${filePath} is ${actual.sha256}, expected ${opts.sha256}`);
      }
    }
    const { size } = await stat(filePath);
    const stored = await this.putStream(key, createReadStream(filePath), opts, size);
    if (opts.sha256 !== undefined && stored.sha256 !== opts.sha256) {
      // The file changed while it was being sent.
      await this.delete(key);
      throw new StorageError('E_SHA_MISMATCH', `${filePath} changed during upload: sent ${stored.sha256}, expected ${opts.sha256}`);
    }
    return stored;
  }

  /**
   * Uploads a stream. With `sha256`, the bytes go to a staging key and reach
   * `key` only once their digest matched, so a bad stream never replaces a good object.
   */
  async uploadStream(key: string, readable: Readable, opts: UploadOptions = {}): Promise<StoredObject> {
    this.checkOpen();
    if (opts.sha256 === undefined) return this.putStream(key, readable, opts);
    const staged = await this.putStream(`${STAGING_PREFIX}${randomUUID()}`, readable, opts);
    try {
      if (staged.sha256 !== opts.sha256) {
        throw new StorageError('E_SHA_MISMATCH', `uploaded bytes have sha256 ${staged.sha256}, expected ${opts.sha256}`);
      }
      await this.copy(staged.key, key, { size: staged.size });
      return { key, size: staged.size, sha256: staged.sha256 };
    } finally {
      await this.delete(staged.key);
    }
  }

  /**
   * Uploads a stream whose digest is only known at its end (an HTTP upload) to
   * the content-addressed key `keyForSha(sha256)`; an existing object there is kept.
   */
  async uploadStreamContentAddressed(
    readable: Readable,
    keyForSha: (sha256: string) => string,
    opts: Omit<UploadOptions, 'sha256'> = {},
  ): Promise<StoredObject & { existed: boolean }> {
    this.checkOpen();
    const staged = await this.putStream(`${STAGING_PREFIX}${randomUUID()}`, readable, opts);
    try {
      const key = keyForSha(staged.sha256);
      const existed = await this.exists(key);
      if (!existed) await this.copy(staged.key, key, { metadata: { sha256: staged.sha256 } });
      return { key, size: staged.size, sha256: staged.sha256, existed };
    } finally {
      await this.delete(staged.key);
    }
  }

  async exists(key: string): Promise<boolean> {
    return (await this.head(key)) !== null;
  }

  async head(key: string): Promise<ObjectHead | null> {
    this.checkOpen();
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { size: out.ContentLength ?? 0, contentType: out.ContentType, metadata: out.Metadata ?? {} };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  /** Downloads to `filePath` atomically (temp file + rename); verifies the digest when given. */
  async downloadToFile(key: string, filePath: string, opts: { expectedSha256?: string } = {}): Promise<{ size: number; sha256: string }> {
    const body = await this.getObjectStream(key);
    await mkdir(path.dirname(filePath), { recursive: true });
    const partPath = `${filePath}.part-${randomUUID()}`;
    const meter = new Sha256Meter();
    try {
      await pipeline(body, meter, createWriteStream(partPath));
      if (opts.expectedSha256 !== undefined && meter.sha256 !== opts.expectedSha256) {
        throw new StorageError('E_SHA_MISMATCH', `object ${key} has sha256 ${meter.sha256}, expected ${opts.expectedSha256}`);
      }
      await rename(partPath, filePath);
    } catch (err) {
      await unlink(partPath).catch(() => undefined);
      throw err;
    }
    return { size: meter.byteCount, sha256: meter.sha256 };
  }

  /** The object's bytes; E_NOT_FOUND when there is no such object. */
  async getObjectStream(key: string): Promise<Readable> {
    this.checkOpen();
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      if (!(out.Body instanceof Readable)) throw new Error(`GetObject ${key} returned no Node.js stream`);
      return out.Body;
    } catch (err) {
      if (isNotFound(err)) throw new StorageError('E_NOT_FOUND', `no object ${key} in bucket ${this.bucket}`, { cause: err });
      throw err;
    }
  }

  /** Objects under a prefix (at most `limit`), in key order. */
  async list(prefix: string, limit = 1000): Promise<{ key: string; size: number; lastModified: Date | null }[]> {
    this.checkOpen();
    const out: { key: string; size: number; lastModified: Date | null }[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token, MaxKeys: Math.min(1000, limit - out.length) }),
      );
      for (const o of page.Contents ?? []) if (o.Key) out.push({ key: o.Key, size: o.Size ?? 0, lastModified: o.LastModified ?? null });
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token && out.length < limit);
    return out;
  }

  /** Idempotent: deleting a missing object succeeds. */
  async delete(key: string): Promise<void> {
    this.checkOpen();
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }

  /** A time-limited GET URL, for clients to fetch plans straight from S3. */
  async presignGet(key: string, expiresSeconds = 900, opts: { downloadName?: string } = {}): Promise<string> {
    this.checkOpen();
    if (!Number.isInteger(expiresSeconds) || expiresSeconds < 1 || expiresSeconds > 7 * 24 * 3600) {
      throw new StorageError('E_INVALID', 'presigned URLs expire after 1 s to 7 days');
    }
    const command = new GetObjectCommand({
      Bucket: this.bucket,
      Key: key,
      ResponseContentDisposition: opts.downloadName ? `attachment; filename="${opts.downloadName.replace(/["\\\r\n]/g, '_')}"` : undefined,
    });
    return getSignedUrl(this.client, command, { expiresIn: expiresSeconds });
  }

  /**
   * Server-side copy; sizes past the CopyObject limit go through a multipart copy.
   * `metadata` is merged into the source's user metadata.
   */
  async copy(sourceKey: string, destKey: string, opts: { size?: number; metadata?: Record<string, string> } = {}): Promise<void> {
    this.checkOpen();
    const head = opts.size === undefined || opts.metadata ? await this.head(sourceKey) : null;
    const total = opts.size ?? head?.size;
    if (total === undefined) throw new StorageError('E_NOT_FOUND', `no object ${sourceKey} in bucket ${this.bucket}`);
    if (total > MAX_SINGLE_COPY) {
      await this.multipartCopy(sourceKey, destKey, total, opts.metadata);
      return;
    }
    const copySource = copySourceOf(this.bucket, sourceKey);
    await this.client.send(
      opts.metadata
        ? new CopyObjectCommand({
            Bucket: this.bucket,
            Key: destKey,
            CopySource: copySource,
            MetadataDirective: 'REPLACE',
            ContentType: head?.contentType,
            Metadata: { ...head?.metadata, ...opts.metadata },
          })
        : new CopyObjectCommand({ Bucket: this.bucket, Key: destKey, CopySource: copySource, MetadataDirective: 'COPY' }),
    );
  }

  private async multipartCopy(sourceKey: string, destKey: string, size: number, metadata?: Record<string, string>): Promise<void> {
    const head = await this.head(sourceKey);
    const created = await this.client.send(
      new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: destKey, ContentType: head?.contentType, Metadata: { ...head?.metadata, ...metadata } }),
    );
    const uploadId = created.UploadId!;
    const partBytes = 512 * 1024 * 1024;
    try {
      const parts: { ETag?: string; PartNumber: number }[] = [];
      for (let offset = 0, part = 1; offset < size; offset += partBytes, part++) {
        const end = Math.min(offset + partBytes, size) - 1;
        const out = await this.client.send(
          new UploadPartCopyCommand({
            Bucket: this.bucket,
            Key: destKey,
            UploadId: uploadId,
            PartNumber: part,
            CopySource: copySourceOf(this.bucket, sourceKey),
            CopySourceRange: `bytes=${offset}-${end}`,
          }),
        );
        parts.push({ ETag: out.CopyPartResult?.ETag, PartNumber: part });
      }
      await this.client.send(
        new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: destKey, UploadId: uploadId, MultipartUpload: { Parts: parts } }),
      );
    } catch (err) {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: destKey, UploadId: uploadId })).catch(() => undefined);
      throw err;
    }
  }

  private async putStream(key: string, readable: Readable, opts: UploadOptions, contentLength?: number): Promise<StoredObject> {
    const meter = new Sha256Meter();
    // pipeline (not pipe) so an error on the source destroys the meter and fails the upload.
    const piping = pipeline(readable, meter).catch((err: unknown) => err);
    const upload = new Upload({
      client: this.client,
      params: {
        Bucket: this.bucket,
        Key: key,
        Body: meter,
        ContentType: opts.contentType ?? 'application/octet-stream',
        ContentLength: contentLength,
        Metadata: { ...opts.metadata, ...(opts.sha256 ? { sha256: opts.sha256 } : {}) },
      },
      partSize: PART_SIZE,
      queueSize: UPLOAD_QUEUE_SIZE,
      leavePartsOnError: false,
    });
    try {
      await upload.done();
    } catch (err) {
      readable.destroy();
      throw (await piping) ?? err;
    }
    const pipeError = await piping;
    if (pipeError) {
      await this.delete(key).catch(() => undefined);
      throw pipeError;
    }
    return { key, size: meter.byteCount, sha256: meter.sha256 };
  }

  private checkOpen(): void {
    if (this.closed) throw new StorageError('E_CLOSED', 'object storage is closed');
  }
}

/** CopySource is "bucket/key", URL-encoded except for the key's slashes. */
function copySourceOf(bucket: string, key: string): string {
  return `${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
}

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === 'NotFound' || e?.name === 'NoSuchKey' || e?.name === 'NoSuchBucket' || e?.$metadata?.httpStatusCode === 404;
}

export async function sha256OfFile(filePath: string): Promise<{ size: number; sha256: string }> {
  const meter = new Sha256Meter();
  await pipeline(createReadStream(filePath), meter, async (source: AsyncIterable<Buffer>) => {
    for await (const _ of source);
  });
  return { size: meter.byteCount, sha256: meter.sha256 };
}
