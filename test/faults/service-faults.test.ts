/**
 * Backing services failing under real API and worker processes. Each test starts its
 * own Redis, Postgres or s3rver (the shared ones of scripts/test.js are never touched),
 * breaks it mid-build and checks that nothing is lost, nothing half-registered, and that
 * clients get 503 + Retry-After rather than a 500 or a hang.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { cleanupTestConfig, testConfig, testConfigEnv } from '../helpers/env.js';
import { REPO_ROOT, eventually, type AppProcess } from '../helpers/services.js';
import { tinyConvNet } from '../helpers/onnx-builder.js';
import { json, listObjectKeys, request, s3Client, sql } from '../api/api-test-kit.js';
import {
  adminKey,
  aofRedis,
  servicesModule,
  slowConvNet,
  startApiProcess,
  startFaultWorker,
  submitBuild,
  targetRows,
  waitForBuild,
  within,
  type OwnService,
} from './faults-kit.js';

const TEST_MS = 300_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('backing service faults', () => {
  const procs: AppProcess[] = [];
  const services: OwnService[] = [];
  const dirs: string[] = [];
  const scratch = (name: string) => {
    const dir = mkdtempSync(join(tmpdir(), `planforge-fault-${name}-`));
    dirs.push(dir);
    return dir;
  };

  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop('SIGKILL', 2000)));
    for (const s of services.reverse()) await s.stop().catch(() => undefined);
    await cleanupTestConfig();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('Postgres stopped: the API answers 503 + Retry-After (no 500, no hang); the build is recorded once Postgres is back', async () => {
    const svc = await servicesModule();
    const port = await svc.freePort();
    const dataDir = join(scratch('pg'), 'data');
    let postgres = await svc.startPostgres({ dataDir, port, fast: true });
    // Root runs Postgres as user postgres; when it cannot enter our temp dir the data goes elsewhere: removed too.
    services.push({ name: 'postgres', port, stop: async () => { await postgres.stop(); rmSync(postgres.dataDir, { recursive: true, force: true }); } });
    const config = await testConfig({ DATABASE_URL: postgres.adminUrl, WORKER_TARGETS: 'sm_90' });
    const api = await startApiProcess(config, adminKey());
    const worker = startFaultWorker(config, 'pg-worker');
    procs.push(api, worker);

    const res = await submitBuild(api, 'pg-outage', slowConvNet({ layers: 8, channels: 32, size: 128, seed: 21 }), ['sm_90']);
    expect(res.statusCode).toBe(202);
    const { buildId } = json(res);
    await eventually('the build to run', async () => (await targetRows(config, buildId))[0]?.status === 'running', { timeoutMs: 60_000, intervalMs: 100 });

    await postgres.stop();
    try {
      const read = await within(15_000, 'GET /v1/models', request(api, { url: '/v1/models' }));
      expect(read.statusCode).toBe(503);
      expect(Number(read.headers['retry-after'])).toBeGreaterThan(0);
      expect(json(read)).toMatchObject({ statusCode: 503, code: 'E_UNAVAILABLE' });
      const ready = await within(15_000, 'GET /health/ready', request(api, { url: '/health/ready', anonymous: true }));
      expect(ready.statusCode).toBe(503);
      const live = await within(15_000, 'GET /health/live', request(api, { url: '/health/live', anonymous: true }));
      expect(live.statusCode).toBe(200);
      const submitted = await within(30_000, 'POST /v1/builds', submitBuild(api, 'pg-outage', tinyConvNet(), ['sm_90']));
      expect(submitted.statusCode).toBe(503);
      expect(Number(submitted.headers['retry-after'])).toBeGreaterThan(0);
      // Longer than the job's own retry budget (3 attempts, 2 s + 4 s backoff): the worker must hold on to its plan.
      await sleep(12_000);
    } finally {
      postgres = await svc.startPostgres({ dataDir, port, fast: true });
    }

    expect(await waitForBuild(config, buildId, [api, worker], 180_000)).toBe('succeeded');
    // One version (the one refused during the outage left nothing), complete, with its one plan whose object exists.
    const versions = await sql<{ id: string; status: string }>(config, 'SELECT id, status FROM model_versions');
    expect(versions).toEqual([expect.objectContaining({ status: 'complete' })]);
    const plans = await sql<{ s3_key: string }>(config, 'SELECT s3_key FROM plans');
    expect(plans).toHaveLength(1);
    expect(await listObjectKeys(config)).toContain(plans[0].s3_key);
    // The API is back without a restart.
    const after = await eventually('the API to read again', async () => {
      const r = await request(api, { url: '/v1/models' });
      return r.statusCode === 200 ? r : undefined;
    }, { timeoutMs: 30_000, intervalMs: 500 });
    expect(json(after).models.map((m: { name: string }) => m.name)).toEqual(['pg-outage']);
  }, TEST_MS);

  it('Redis killed (-9) and restarted with AOF while builds are queued and running: every build completes', async () => {
    const redis = await aofRedis(scratch('redis'));
    services.push({ name: 'redis', port: redis.port, stop: () => redis.kill() });
    const config = await testConfig({ REDIS_URL: redis.url, WORKER_TARGETS: 'sm_90' });
    const api = await startApiProcess(config, adminKey());
    const worker = startFaultWorker(config, 'redis-worker');
    procs.push(api, worker);

    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await submitBuild(api, 'redis-outage', slowConvNet({ layers: 6, channels: 24, size: 96, seed: 30 + i }), ['sm_90']);
      expect(res.statusCode).toBe(202);
      ids.push(json(res).buildId);
    }
    await eventually('a build to run', async () => (await targetRows(config, ids[0]))[0]?.status === 'running', { timeoutMs: 60_000, intervalMs: 100 });
    await redis.kill();
    await sleep(1500);
    await redis.start();

    for (const id of ids) expect(await waitForBuild(config, id, [api, worker], 240_000)).toBe('succeeded');
    // The API reconnected too: a new submission is queued and built.
    const again = await eventually('a submission after the restart', async () => {
      const r = await submitBuild(api, 'redis-outage', slowConvNet({ layers: 1, channels: 4, size: 8, seed: 39 }), ['sm_90']);
      return r.statusCode === 202 ? r : undefined;
    }, { timeoutMs: 30_000, intervalMs: 500 });
    expect(await waitForBuild(config, json(again).buildId, [api, worker], 120_000)).toBe('succeeded');
    const [counts] = await sql<{ versions: number; plans: number }>(config, 'SELECT (SELECT count(*) FROM model_versions WHERE status = \'complete\')::int AS versions, (SELECT count(*) FROM plans)::int AS plans');
    expect(counts).toEqual({ versions: 5, plans: 5 });
  }, TEST_MS);

  it('S3 down during the upload: retried, then the target fails cleanly; no row points at a missing object; the sweeper removes orphans', async () => {
    const svc = await servicesModule();
    const port = await svc.freePort();
    const dir = scratch('s3');
    let s3 = await svc.startS3rver({ dir, port });
    services.push({ name: 's3rver', port, stop: () => s3.stop() });
    const config = await testConfig({ S3_ENDPOINT: s3.endpoint, WORKER_TARGETS: 'sm_90' });
    const api = await startApiProcess(config, adminKey());
    const worker = startFaultWorker(config, 's3-worker');
    procs.push(api, worker);

    const res = await submitBuild(api, 's3-outage', slowConvNet({ layers: 8, channels: 32, size: 128, seed: 41 }), ['sm_90']);
    expect(res.statusCode).toBe(202);
    const { buildId } = json(res);
    await eventually('the build to run', async () => (await targetRows(config, buildId))[0]?.status === 'running', { timeoutMs: 60_000, intervalMs: 100 });
    await s3.stop();

    // Three attempts with backoff (2 s, 4 s), each failing to reach S3: the target fails, the version is failed, not half-registered.
    expect(await waitForBuild(config, buildId, [api, worker], 180_000)).toBe('failed');
    const [target] = await targetRows(config, buildId);
    expect(target).toMatchObject({ status: 'failed', attempts: 3 });
    expect(await sql(config, 'SELECT 1 FROM plans')).toEqual([]);
    const [version] = await sql<{ status: string }>(config, 'SELECT status FROM model_versions');
    expect(version.status).toBe('failed');

    s3 = await svc.startS3rver({ dir, port });
    // Whatever was stored, no registry row points at an object that is missing.
    const keys = new Set(await listObjectKeys(config));
    for (const row of await sql<{ key: string }>(config, 'SELECT s3_key AS key FROM plans UNION SELECT model_key FROM model_versions')) {
      expect(keys.has(row.key)).toBe(true);
    }

    // Orphans of a crash: a plan uploaded but never recorded, a staged upload never moved. Plus a recorded model that must stay.
    const client = s3Client(config);
    const orphanPlan = `plans/${createHash('sha256').update('orphan').digest('hex')}.plan`;
    try {
      await client.send(new PutObjectCommand({ Bucket: config.s3.bucket, Key: orphanPlan, Body: 'orphan plan' }));
      await client.send(new PutObjectCommand({ Bucket: config.s3.bucket, Key: 'staging/0f3a-crashed-upload', Body: 'half an upload' }));
    } finally {
      client.destroy();
    }
    const sweep = (...args: string[]) => {
      const out = spawnSync(process.execPath, [join(REPO_ROOT, 'scripts', 'sweep-orphans.js'), ...args], {
        cwd: REPO_ROOT,
        env: { PATH: process.env.PATH ?? '', ...testConfigEnv(config) },
        encoding: 'utf8',
      });
      if (out.status !== 0) throw new Error(`sweep-orphans ${args.join(' ')} exited ${out.status}: ${out.stderr}`);
      return JSON.parse(out.stdout.trim().split('\n').pop()!);
    };
    // Young objects are left alone (a worker uploads its plan before recording it).
    expect(sweep()).toMatchObject({ removed: [], young: expect.any(Number) });
    const dry = sweep('--older-than', '0s', '--dry-run');
    expect(dry.removed.sort()).toEqual([orphanPlan, 'staging/0f3a-crashed-upload']);
    expect(await listObjectKeys(config)).toContain(orphanPlan);
    const done = sweep('--older-than', '0s');
    expect(done.removed.sort()).toEqual([orphanPlan, 'staging/0f3a-crashed-upload']);
    const left = await listObjectKeys(config);
    expect(left).not.toContain(orphanPlan);
    expect(left.filter((k) => k.startsWith('staging/'))).toEqual([]);
    // The failed version's model is still referenced by its row: kept.
    const [model] = await sql<{ model_key: string }>(config, 'SELECT model_key FROM model_versions');
    expect(left).toContain(model.model_key);
  }, TEST_MS);
});
