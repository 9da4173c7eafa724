/**
 * The whole farm, end to end, the way it runs in production: the API listening on a
 * real port, two worker processes (sm_80 and sm_90) started with `node
 * dist/apps/worker/src/main.js`, a model uploaded over HTTP multipart, plans checked
 * in S3, in the registry, through the API and via the presigned URL.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { createApiApp, type NestFastifyApplication } from '../../apps/api/src/api-app.js';
import type { AppConfig } from '../../libs/config/index.js';
import { TARGETS, finalizeQueueName, smOf, targetQueueName, type Target } from '../../libs/contracts/index.js';
import { inspectPlan } from '../../libs/native/index.js';
import { ObjectStorage } from '../../libs/storage/index.js';
import { cleanupTestConfig, testConfig } from '../helpers/env.js';
import { tinyConvNet } from '../helpers/onnx-builder.js';
import { eventually, startWorkerProcess, type AppProcess } from '../helpers/services.js';

const BUILD_TARGETS: Target[] = ['sm_80', 'sm_90'];
const MODEL_NAME = 'e2e-tiny-cnn';

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

async function sql<T extends pg.QueryResultRow = pg.QueryResultRow>(config: AppConfig, text: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: config.databaseUrl });
  await client.connect();
  try {
    return (await client.query<T>(text, params)).rows;
  } finally {
    await client.end();
  }
}

async function listKeys(config: AppConfig): Promise<string[]> {
  const s3 = new S3Client({
    endpoint: config.s3.endpoint,
    region: config.s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: config.s3.accessKeyId ?? '', secretAccessKey: config.s3.secretAccessKey ?? '' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  try {
    const res = await s3.send(new ListObjectsV2Command({ Bucket: config.s3.bucket }));
    return (res.Contents ?? []).map((o) => o.Key as string).sort();
  } finally {
    s3.destroy();
  }
}

/** Jobs of any state in every queue of this farm. */
async function queuedJobs(config: AppConfig): Promise<number> {
  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
  let total = 0;
  try {
    for (const name of [...TARGETS.map((t) => targetQueueName(t, config.queuePrefix)), finalizeQueueName(config.queuePrefix)]) {
      const queue = new Queue(name, { connection: redis, prefix: config.bullPrefix });
      try {
        const counts = await queue.getJobCounts();
        total += Object.values(counts).reduce((a, b) => a + b, 0);
      } finally {
        await queue.close();
      }
    }
  } finally {
    redis.disconnect();
  }
  return total;
}

/** The API runs with auth on: this admin key is ensured at boot from ADMIN_API_KEY. */
const E2E_ADMIN_KEY = `pf_e2e_${Math.random().toString(36).slice(2)}${Date.now().toString(36)}-admin-key`;
const AUTH = { authorization: `Bearer ${E2E_ADMIN_KEY}` };

async function getJson(url: string): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { headers: AUTH });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

function submitForm(spec: unknown, model: Uint8Array, filename = 'model.onnx'): FormData {
  const form = new FormData();
  form.append('spec', JSON.stringify(spec));
  form.append('model', new Blob([model], { type: 'application/octet-stream' }), filename);
  return form;
}

describe('build flow: API + two worker processes + Redis + Postgres + S3', () => {
  let config: AppConfig;
  let app: NestFastifyApplication;
  let base: string;
  let workers: AppProcess[] = [];
  let storage: ObjectStorage;
  let scratch: string;

  beforeAll(async () => {
    config = await testConfig({ API_HOST: '127.0.0.1', API_PORT: '0', ADMIN_API_KEY: E2E_ADMIN_KEY });
    app = await createApiApp(config, { logger: false });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.getHttpServer().address();
    if (!address || typeof address === 'string') throw new Error('API is not listening on a TCP port');
    base = `http://127.0.0.1:${address.port}`;
    workers = BUILD_TARGETS.map((target) =>
      startWorkerProcess(config, { WORKER_TARGETS: target, WORKER_ID: `e2e-${target}`, WORKER_MODE: 'cross' }),
    );
    storage = new ObjectStorage(config.s3);
    scratch = mkdtempSync(join(tmpdir(), 'planforge-e2e-'));
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop('SIGKILL', 1000)));
    await app?.close();
    await storage?.close();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
    await cleanupTestConfig();
  });

  it('refuses a model that is not ONNX over real HTTP and leaves nothing behind', async () => {
    const res = await fetch(`${base}/v1/builds`, {
      method: 'POST',
      headers: AUTH,
      body: submitForm({ model: MODEL_NAME, targets: BUILD_TARGETS }, new TextEncoder().encode('this is not an onnx model')),
    });
    // 422: well-formed request, but the parser refuses the file.
    expect(res.status).toBe(422);
    const body = (await res.json()) as { errors: { field: string }[] };
    expect(body.errors).toEqual([expect.objectContaining({ field: 'model' })]);
    const [counts] = await sql(
      config,
      `SELECT (SELECT count(*) FROM models)::int AS models, (SELECT count(*) FROM model_versions)::int AS versions,
              (SELECT count(*) FROM builds)::int AS builds, (SELECT count(*) FROM plans)::int AS plans`,
    );
    expect(counts).toEqual({ models: 0, versions: 0, builds: 0, plans: 0 });
    expect(await listKeys(config)).toEqual([]);
    expect(await queuedJobs(config)).toBe(0);
  });

  it('builds sm_80 and sm_90 plans on separate workers, stored, recorded and downloadable', async () => {
    const model = tinyConvNet();
    const res = await fetch(`${base}/v1/builds`, {
      method: 'POST',
      headers: AUTH,
      body: submitForm({ model: MODEL_NAME, targets: BUILD_TARGETS, labels: { suite: 'e2e' } }, model, 'tiny-cnn.onnx'),
    });
    const submitted = (await res.json()) as { buildId: string; model: string; version: number; targets: Target[]; status: string };
    expect(res.status).toBe(202);
    expect(submitted).toMatchObject({ model: MODEL_NAME, version: 1, targets: BUILD_TARGETS, status: 'queued' });

    const build = await eventually(
      'the build to finish',
      async () => {
        for (const w of workers) {
          if (w.child.exitCode !== null) throw new Error(`${w.name} exited with ${w.child.exitCode}:\n${w.output()}`);
        }
        const { body } = await getJson(`${base}/v1/builds/${submitted.buildId}`);
        return ['succeeded', 'partial', 'failed'].includes(body.status) ? body : undefined;
      },
      { timeoutMs: 100_000, intervalMs: 500 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${workers.map((w) => `--- ${w.name}\n${w.output().slice(-4000)}`).join('\n')}`);
    });
    expect(build.status).toBe('succeeded');
    // Each target was built by the worker serving it: the queues really route per SM.
    for (const t of build.targets) {
      expect(t).toMatchObject({ status: 'succeeded', progress: 100, workerId: `e2e-${t.target}` });
    }

    // Registry: one model, one complete version, two plans.
    const versions = await sql(config, `SELECT v.id, v.version, v.status, v.model_sha256 FROM model_versions v JOIN models m ON m.id = v.model_id WHERE m.name = $1`, [MODEL_NAME]);
    expect(versions).toHaveLength(1);
    expect(versions[0]).toMatchObject({ version: 1, status: 'complete', model_sha256: sha256(model) });
    const rows = await sql<{ target: Target; s3_key: string; sha256: string; size: string }>(
      config,
      'SELECT target, s3_key, sha256, size FROM plans WHERE model_version_id = $1 ORDER BY target',
      [versions[0].id],
    );
    expect(rows.map((r) => r.target)).toEqual(BUILD_TARGETS);

    const version = await getJson(`${base}/v1/models/${MODEL_NAME}/versions/1`);
    expect(version.status).toBe(200);
    expect(version.body).toMatchObject({ model: MODEL_NAME, version: 1, status: 'complete', sha256: sha256(model) });
    expect(Object.keys(version.body.links.plans).sort()).toEqual(BUILD_TARGETS);
    const listed = await getJson(`${base}/v1/models/${MODEL_NAME}/versions`);
    expect(listed.body.versions.map((v: { version: number }) => v.version)).toEqual([1]);

    for (const row of rows) {
      // S3 holds the bytes the registry describes.
      const file = join(scratch, `${row.target}.plan`);
      const stored = await storage.downloadToFile(row.s3_key, file);
      const bytes = readFileSync(file);
      expect(stored).toEqual({ size: Number(row.size), sha256: row.sha256 });
      expect(sha256(bytes)).toBe(row.sha256);
      expect(bytes.length).toBe(Number(row.size));

      // The plan's own header names the SM it was built for, and the model it came from.
      const info = await inspectPlan(file);
      expect(info.header.sm).toBe(row.target);
      expect(info.header.modelSha256).toBe(sha256(model));
      expect(info.planSize).toBe(bytes.length);
      expect(smOf(info.header.sm)).toBe(smOf(row.target));

      // The API's metadata agrees, and its presigned URL serves the very same bytes.
      const plan = await getJson(`${base}/v1/models/${MODEL_NAME}/versions/1/plans/${row.target}`);
      expect(plan.status).toBe(200);
      expect(plan.body).toMatchObject({ target: row.target, sha256: row.sha256, size: Number(row.size) });
      expect(plan.body.header).toMatchObject({ sm: row.target });
      // Presigned: S3 itself authorizes it, no API key.
      const download = await fetch(plan.body.download.url);
      expect(download.status).toBe(200);
      const downloaded = new Uint8Array(await download.arrayBuffer());
      expect(sha256(downloaded)).toBe(row.sha256);
    }

    // Plans of different SMs differ (the header alone guarantees it).
    expect(rows[0].sha256).not.toBe(rows[1].sha256);
  });

  it('stops worker processes cleanly on SIGTERM', async () => {
    const results = await Promise.all(workers.map((w) => w.stop('SIGTERM', 15_000)));
    for (const [i, r] of results.entries()) {
      if (r.code !== 0) throw new Error(`${workers[i].name} exited with ${r.code ?? r.signal}:\n${workers[i].output().slice(-4000)}`);
      expect(r.ms).toBeLessThan(10_000);
    }
  });
});
