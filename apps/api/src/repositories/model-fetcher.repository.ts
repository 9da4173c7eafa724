import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Inject, Injectable } from '@nestjs/common';
import { API_CONFIG, type ApiAppConfig } from '../api-config.token.js';
import { ApiError } from '../errors/api.error.js';
import { StorageRepository } from './storage.repository.js';

export interface FetchedModel {
  path: string;
  size: number;
  sha256: string;
  /** Where it came from (S3 key or final URL), for provenance. */
  origin: string;
  /** The path, as ModelFile wants it. */
  localPath(): Promise<string>;
  dispose(): Promise<void>;
}

const MAX_REDIRECTS = 5;
const FETCH_TIMEOUT_MS = 30 * 60_000;

/** Thrown for a URL whose host is not on the trigger's allow-list (also after a redirect). */
export const HOST_NOT_ALLOWED_CODE = 'E_HOST_NOT_ALLOWED';
export const SOURCE_UNAVAILABLE_CODE = 'E_SOURCE_UNAVAILABLE';

/** `host` or `host:port`, lowercase; default ports are left out by URL, so they are not in the list either. */
export function hostOf(url: URL): string {
  return url.host.toLowerCase();
}

/**
 * Fetches the ONNX model a CI webhook points at into WORK_DIR/uploads: from the
 * farm's bucket, or from an HTTPS URL whose host (and every redirect's) is on the
 * trigger's allow-list. Size-capped at MAX_UPLOAD_BYTES, hashed while written.
 */
@Injectable()
export class ModelFetcherRepository {
  private readonly dir: string;

  constructor(
    @Inject(API_CONFIG) private readonly config: ApiAppConfig,
    private readonly storage: StorageRepository,
  ) {
    this.dir = join(config.workDir, 'uploads');
  }

  async fromS3(key: string): Promise<FetchedModel> {
    const head = await this.storage.head(key).catch((err: unknown) => {
      throw ApiError.serviceUnavailable(`object storage is unavailable: ${(err as Error).message}`, SOURCE_UNAVAILABLE_CODE);
    });
    if (!head) throw ApiError.unprocessable(`the model is not in the bucket: no object at "${key}"`, SOURCE_UNAVAILABLE_CODE);
    if (head.size > this.config.api.maxUploadBytes) throw ApiError.payloadTooLarge(`model at "${key}" is ${head.size} bytes, over MAX_UPLOAD_BYTES`);
    await mkdir(this.dir, { recursive: true });
    const path = join(this.dir, `${randomUUID()}.onnx`);
    try {
      const { size, sha256 } = await this.storage.downloadToFile(key, path);
      return { path, size, sha256, origin: `s3:${key}`, localPath: async () => path, dispose: () => rm(path, { force: true }) };
    } catch (err) {
      await rm(path, { force: true });
      throw ApiError.unprocessable(`could not read the model at "${key}": ${(err as Error).message}`, SOURCE_UNAVAILABLE_CODE);
    }
  }

  /** Redirects are followed by hand so each hop's host is checked against the allow-list. */
  async fromUrl(url: URL, allowedHosts: readonly string[]): Promise<FetchedModel> {
    const allowed = new Set(allowedHosts.map((h) => h.toLowerCase()));
    let current = url;
    const signal = AbortSignal.timeout(FETCH_TIMEOUT_MS);
    for (let hop = 0; ; hop++) {
      this.checkUrl(current, allowed);
      let res: Response;
      try {
        res = await fetch(current, { redirect: 'manual', signal, headers: { accept: 'application/octet-stream' } });
      } catch (err) {
        throw ApiError.unprocessable(`could not download the model from ${current.origin}: ${(err as Error).message}`, SOURCE_UNAVAILABLE_CODE);
      }
      if (res.status >= 300 && res.status < 400 && res.headers.get('location')) {
        await res.body?.cancel().catch(() => undefined);
        if (hop >= MAX_REDIRECTS) throw ApiError.unprocessable(`too many redirects fetching the model from ${url.origin}`, SOURCE_UNAVAILABLE_CODE);
        current = new URL(res.headers.get('location')!, current);
        continue;
      }
      if (!res.ok || !res.body) {
        await res.body?.cancel().catch(() => undefined);
        throw ApiError.unprocessable(`downloading the model from ${current.origin}${current.pathname} answered HTTP ${res.status}`, SOURCE_UNAVAILABLE_CODE);
      }
      const declared = Number(res.headers.get('content-length'));
      if (Number.isFinite(declared) && declared > this.config.api.maxUploadBytes) {
        await res.body.cancel().catch(() => undefined);
        throw ApiError.payloadTooLarge(`model at ${current.origin}${current.pathname} is ${declared} bytes, over MAX_UPLOAD_BYTES`);
      }
      return this.spool(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), current);
    }
  }

  private checkUrl(url: URL, allowed: ReadonlySet<string>): void {
    const scheme = url.protocol.replace(/:$/, '');
    if (scheme !== 'https' && !(scheme === 'http' && this.config.webhooks.allowInsecureHttp)) {
      throw ApiError.unprocessable(`model URL scheme ${scheme}:// is not allowed (https only${scheme === 'http' ? '; WEBHOOK_ALLOW_INSECURE_HTTP is off' : ''})`, HOST_NOT_ALLOWED_CODE);
    }
    if (!allowed.has(hostOf(url))) {
      throw ApiError.unprocessable(`model host "${hostOf(url)}" is not on the trigger's allow-list (${[...allowed].join(', ') || 'empty'}); nothing was built`, HOST_NOT_ALLOWED_CODE);
    }
  }

  private async spool(body: Readable, url: URL): Promise<FetchedModel> {
    await mkdir(this.dir, { recursive: true });
    const path = join(this.dir, `${randomUUID()}.onnx`);
    const hash = createHash('sha256');
    const max = this.config.api.maxUploadBytes;
    let size = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, callback) {
        size += chunk.length;
        if (size > max) return callback(ApiError.payloadTooLarge(`model at ${url.origin}${url.pathname} exceeds MAX_UPLOAD_BYTES (${max} bytes)`));
        hash.update(chunk);
        callback(null, chunk);
      },
    });
    try {
      await pipeline(body, meter, createWriteStream(path, { flags: 'wx' }));
    } catch (err) {
      await rm(path, { force: true });
      if (err instanceof ApiError) throw err;
      throw ApiError.unprocessable(`downloading the model from ${url.origin} failed: ${(err as Error).message}`, SOURCE_UNAVAILABLE_CODE);
    }
    if (size === 0) {
      await rm(path, { force: true });
      throw ApiError.unprocessable(`the model at ${url.origin}${url.pathname} is empty`, SOURCE_UNAVAILABLE_CODE);
    }
    return { path, size, sha256: hash.digest('hex'), origin: url.toString(), localPath: async () => path, dispose: () => rm(path, { force: true }) };
  }
}
