/**
 * Shared by the API tests: an app on a fresh isolated farm (testConfig), multipart
 * bodies for app.inject, and probes of what a request left behind in Postgres, S3,
 * Redis and the upload directory.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import pg from 'pg';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { AppConfig } from '../../libs/config/index.js';
import { createApiApp, type NestFastifyApplication } from '../../apps/api/src/api-app.js';
import { testConfig, type EnvOverrides } from '../helpers/env.js';

export interface Part {
  name: string;
  value: string | Buffer;
  /** Set for file parts. */
  filename?: string;
  contentType?: string;
}

const BOUNDARY = '----planforge-test-boundary-7f3a';

export function multipartHeaders(): Record<string, string> {
  return { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` };
}

function partHead(p: Part): string {
  const disposition = `form-data; name="${p.name}"${p.filename !== undefined ? `; filename="${p.filename}"` : ''}`;
  const type = p.contentType ?? (p.filename !== undefined ? 'application/octet-stream' : undefined);
  return `--${BOUNDARY}\r\nContent-Disposition: ${disposition}\r\n${type ? `Content-Type: ${type}\r\n` : ''}\r\n`;
}

/** A complete multipart/form-data body, parts in the order given. */
export function multipartBody(parts: Part[]): Buffer {
  const chunks: Buffer[] = [];
  for (const p of parts) {
    chunks.push(Buffer.from(partHead(p)), Buffer.isBuffer(p.value) ? p.value : Buffer.from(p.value), Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${BOUNDARY}--\r\n`));
  return Buffer.concat(chunks);
}

/**
 * A multipart body as a stream with no Content-Length: a spec then a file of
 * `fileBytes` bytes generated on the fly. `served` counts the file bytes pulled so far.
 */
export function streamingUpload(spec: string, fileBytes: number): { stream: Readable; served: () => number } {
  let served = 0;
  const chunk = Buffer.alloc(64 * 1024, 0x5a);
  function* generate(): Generator<Buffer> {
    yield Buffer.from(partHead({ name: 'spec', value: spec }) + spec + '\r\n');
    yield Buffer.from(partHead({ name: 'model', value: '', filename: 'big.onnx' }));
    while (served < fileBytes) {
      const n = Math.min(chunk.length, fileBytes - served);
      served += n;
      yield n === chunk.length ? chunk : chunk.subarray(0, n);
    }
    yield Buffer.from(`\r\n--${BOUNDARY}--\r\n`);
  }
  return { stream: Readable.from(generate(), { objectMode: false }), served: () => served };
}

export interface SubmitOptions {
  spec: unknown;
  model: Buffer;
  /** Which part comes first (default spec). */
  order?: 'spec-first' | 'file-first';
}

export function submitParts({ spec, model, order = 'spec-first' }: SubmitOptions): Part[] {
  const specPart: Part = { name: 'spec', value: typeof spec === 'string' ? spec : JSON.stringify(spec) };
  const filePart: Part = { name: 'model', value: model, filename: 'model.onnx' };
  return order === 'spec-first' ? [specPart, filePart] : [filePart, specPart];
}

export interface ApiUnderTest {
  app: NestFastifyApplication;
  config: AppConfig;
  /** http://127.0.0.1:<port> */
  baseUrl: string;
  /** An admin key (ADMIN_API_KEY of the config): request() sends it unless told otherwise. */
  apiKey?: string;
}

export interface RequestOptions {
  method?: string;
  url: string;
  headers?: Record<string, string>;
  /** An object is sent as JSON; a stream is sent chunked (no Content-Length). */
  payload?: Buffer | string | Record<string, unknown> | Readable;
  /** Send no API key even when the API under test has one. */
  anonymous?: boolean;
}

export interface HttpResult {
  statusCode: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * A real HTTP request (app.inject cannot run under jest on Node 20: light-my-request
 * require()s the ESM-only "cookie" package). A response that arrives while the
 * body is still being sent wins over the EPIPE/ECONNRESET of the closed connection.
 */
export function request(api: { baseUrl: string; apiKey?: string }, opts: RequestOptions): Promise<HttpResult> {
  const { method = 'GET', url, payload } = opts;
  const headers: Record<string, string> = { ...opts.headers };
  const named = Object.keys(headers).map((h) => h.toLowerCase());
  if (api.apiKey && !opts.anonymous && !named.includes('authorization') && !named.includes('x-api-key')) {
    headers.authorization = `Bearer ${api.apiKey}`;
  }
  let body: Buffer | Readable | undefined;
  if (payload instanceof Readable) body = payload;
  else if (Buffer.isBuffer(payload) || typeof payload === 'string') body = Buffer.from(payload);
  else if (payload !== undefined) {
    body = Buffer.from(JSON.stringify(payload));
    headers['content-type'] ??= 'application/json';
  }
  if (Buffer.isBuffer(body)) headers['content-length'] = String(body.length);
  return new Promise((resolve, reject) => {
    let settled = false;
    const req = http.request(new URL(url, api.baseUrl), { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', () => undefined);
      res.on('end', () => {
        settled = true;
        resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') });
      });
    });
    req.on('error', (err) => {
      if (!settled) setTimeout(() => !settled && reject(err), 500);
    });
    if (body instanceof Readable) {
      body.on('error', () => undefined);
      body.pipe(req);
      req.on('close', () => body.unpipe(req));
    } else req.end(body);
  });
}

export async function submit(api: { baseUrl: string; apiKey?: string }, options: SubmitOptions): Promise<HttpResult> {
  return request(api, { method: 'POST', url: '/v1/builds', headers: multipartHeaders(), payload: multipartBody(submitParts(options)) });
}

/**
 * createApiApp on an isolated farm, listening on a free local port. Auth is on:
 * unless the config names one, an ADMIN_API_KEY is made up, and request()/submit() send it.
 */
export async function listen(given: AppConfig): Promise<ApiUnderTest> {
  const config: AppConfig =
    given.auth.adminApiKey || given.auth.disabled
      ? given
      : { ...given, auth: { ...given.auth, adminApiKey: `pf_test_${randomBytes(24).toString('base64url')}` } };
  const app = await createApiApp(config, { logger: process.env.PLANFORGE_TEST_LOGS ? undefined : false });
  try {
    await app.listen({ port: 0, host: '127.0.0.1' });
  } catch (err) {
    await app.close();
    throw err;
  }
  const address = app.getHttpServer().address() as AddressInfo;
  return { app, config, baseUrl: `http://127.0.0.1:${address.port}`, apiKey: config.auth.disabled ? undefined : config.auth.adminApiKey };
}

export async function startApi(overrides: EnvOverrides = {}): Promise<ApiUnderTest> {
  return listen(await testConfig(overrides));
}

export async function sql<T extends pg.QueryResultRow = Record<string, unknown>>(config: AppConfig, text: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: config.databaseUrl });
  await client.connect();
  try {
    return (await client.query<T>(text, params)).rows;
  } finally {
    await client.end();
  }
}

export function s3Client(config: AppConfig): S3Client {
  return new S3Client({
    endpoint: config.s3.endpoint,
    region: config.s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: config.s3.accessKeyId ?? '', secretAccessKey: config.s3.secretAccessKey ?? '' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

export async function listObjectKeys(config: AppConfig): Promise<string[]> {
  const s3 = s3Client(config);
  try {
    const out = await s3.send(new ListObjectsV2Command({ Bucket: config.s3.bucket }));
    return (out.Contents ?? []).map((o) => o.Key!).sort();
  } finally {
    s3.destroy();
  }
}

export function uploadDirEntries(config: AppConfig): string[] {
  const dir = join(config.workDir, 'uploads');
  return existsSync(dir) ? readdirSync(dir) : [];
}

/** Rows per registry table (0 for a table not yet created). */
export async function rowCounts(config: AppConfig): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const table of ['models', 'model_versions', 'builds', 'build_targets', 'plans']) {
    const [row] = await sql<{ n: number }>(config, `SELECT count(*)::int AS n FROM ${table}`);
    counts[table] = row.n;
  }
  return counts;
}

/** Opens queues of an isolated farm on one Redis connection; close() closes them all. */
export class QueueProbe {
  private readonly redis: Redis;
  private readonly queues = new Map<string, Queue>();

  constructor(private readonly config: AppConfig) {
    this.redis = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
  }

  queue(name: string): Queue {
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue(name, { connection: this.redis, prefix: this.config.bullPrefix });
      this.queues.set(name, q);
    }
    return q;
  }

  async close(): Promise<void> {
    for (const q of this.queues.values()) await q.close();
    await this.redis.quit();
  }
}

/** Reads a JSON body; fails the test with the raw body when it is not JSON. */
export function json<T = any>(res: { body: string }): T {
  try {
    return JSON.parse(res.body) as T;
  } catch {
    throw new Error(`response is not JSON: ${res.body.slice(0, 500)}`);
  }
}
