import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { HeadBucketCommand, S3Client } from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import { ObjectStorage, type ObjectHead, type StoredObject, type UploadOptions } from '../../../../libs/storage/index.js';
import { API_CONFIG, type ApiAppConfig } from '../api-config.token.js';

/** The farm's bucket as the API uses it: model uploads, plan download links, a readiness probe. */
@Injectable()
export class StorageRepository implements OnApplicationShutdown {
  private readonly storage: ObjectStorage;
  /** ObjectStorage has no side-effect-free bucket probe (ensureBucket creates): HeadBucket needs its own client. */
  private readonly probe: S3Client;
  private readonly bucket: string;

  constructor(@Inject(API_CONFIG) config: ApiAppConfig) {
    this.storage = new ObjectStorage(config.s3);
    this.bucket = config.s3.bucket;
    const s3 = config.s3;
    this.probe = new S3Client({
      region: s3.region,
      endpoint: s3.endpoint,
      forcePathStyle: s3.forcePathStyle,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      ...(s3.accessKeyId && s3.secretAccessKey
        ? { credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } }
        : {}),
      maxAttempts: 1,
    });
  }

  exists(key: string): Promise<boolean> {
    return this.storage.exists(key);
  }

  uploadFile(key: string, filePath: string, opts: UploadOptions): Promise<StoredObject> {
    return this.storage.uploadFile(key, filePath, opts);
  }

  head(key: string): Promise<ObjectHead | null> {
    return this.storage.head(key);
  }

  downloadToFile(key: string, filePath: string): Promise<{ size: number; sha256: string }> {
    return this.storage.downloadToFile(key, filePath);
  }

  /** The object's bytes; StorageError E_NOT_FOUND when missing (build logs). */
  getObjectStream(key: string): Promise<Readable> {
    return this.storage.getObjectStream(key);
  }

  presignGet(key: string, expiresSeconds: number): Promise<string> {
    return this.storage.presignGet(key, expiresSeconds);
  }

  /** Rejects when the bucket is missing or unreachable. */
  async checkBucket(): Promise<void> {
    try {
      await this.probe.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 404) throw new Error(`bucket ${this.bucket} does not exist`);
      throw err;
    }
  }

  async onApplicationShutdown(): Promise<void> {
    this.probe.destroy();
    await this.storage.close();
  }
}
