/** GET /v1/models, versions and plans, after pushes through the API and a plan recorded as a worker would. */
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BuildRepository, createDataSource, PlanRepository, VersionRepository } from '../../libs/registry/index.js';
import { ObjectStorage, planKey } from '../../libs/storage/index.js';
import { cleanupTestConfig } from '../helpers/env.js';
import { tinyConvNet } from '../helpers/onnx-builder.js';
import { json, request, startApi, submit, type ApiUnderTest } from './api-test-kit.js';

describe('model registry endpoints', () => {
  let api: ApiUnderTest;
  let planBytes: Buffer;
  let firstBuildId: string;

  beforeAll(async () => {
    api = await startApi();
    const model = tinyConvNet();
    const a1 = await submit(api, { spec: { model: 'detector', targets: ['ampere'], precision: 'fp16' }, model });
    const a2 = await submit(api, { spec: { model: 'detector', targets: ['sm_90'] }, model });
    const b1 = await submit(api, { spec: { model: 'classifier', targets: ['sm_87'] }, model });
    for (const r of [a1, a2, b1]) expect(r.statusCode).toBe(202);
    firstBuildId = json(a1).buildId;

    // What a worker does once sm_80 of detector v1 is built: plan bytes to S3, row to Postgres.
    planBytes = Buffer.from('PFPLAN\x00\x01 fake-but-real bytes for the download check');
    const sha = createHash('sha256').update(planBytes).digest('hex');
    const dir = mkdtempSync(join(tmpdir(), 'plan-'));
    const storage = new ObjectStorage(api.config.s3);
    const ds = await createDataSource(api.config.databaseUrl).initialize();
    try {
      writeFileSync(join(dir, 'p.plan'), planBytes);
      await storage.uploadFile(planKey(sha), join(dir, 'p.plan'), { sha256: sha });
      const [v1] = await ds.query(`SELECT v.id FROM model_versions v JOIN models m ON m.id = v.model_id WHERE m.name = 'detector' AND v.version = 1`);
      await new PlanRepository(ds).recordPlan({
        modelVersionId: v1.id,
        target: 'sm_80',
        s3Key: planKey(sha),
        sha256: sha,
        size: planBytes.length,
        precision: 'fp16',
        tuned: false,
        optimizerVersion: '0.1.0-test',
        header: { formatVersion: 1, sm: 80, precision: 'fp16' },
        verification: { maxAbsError: 0.001, passed: true },
        buildMs: 1234,
      });
    } finally {
      await ds.destroy();
      await storage.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
  afterAll(async () => {
    await api?.app.close();
    await cleanupTestConfig();
  });

  it('lists models with their latest version and version count', async () => {
    const res = await request(api, { method: 'GET', url: '/v1/models' });
    expect(res.statusCode).toBe(200);
    const { models } = json(res);
    expect(models).toEqual([
      expect.objectContaining({ name: 'classifier', latestVersion: 1, versionCount: 1 }),
      expect.objectContaining({ name: 'detector', latestVersion: 2, versionCount: 2 }),
    ]);
    expect(Date.parse(models[0].createdAt)).not.toBeNaN();
    expect(models[1].links.versions).toMatch(/\/v1\/models\/detector\/versions$/);
  });

  it('lists the versions of a model', async () => {
    const res = await request(api, { method: 'GET', url: '/v1/models/detector/versions' });
    expect(res.statusCode).toBe(200);
    const body = json(res);
    expect(body.model).toBe('detector');
    expect(body.versions.map((v: { version: number }) => v.version)).toEqual([1, 2]);
    const sha = createHash('sha256').update(tinyConvNet()).digest('hex');
    expect(body.versions[0]).toMatchObject({
      version: 1,
      status: 'building',
      sha256: sha,
      targets: ['sm_80', 'sm_86'],
      spec: { model: 'detector', precision: 'fp16' },
      buildId: firstBuildId,
      completedAt: null,
      error: null,
    });
    expect(body.versions[1]).toMatchObject({ version: 2, targets: ['sm_90'], spec: { precision: 'fp32' } });
    expect(Date.parse(body.versions[0].createdAt)).not.toBeNaN();
  });

  it('shows one version with links to the plans built so far', async () => {
    const res = await request(api, { method: 'GET', url: '/v1/models/detector/versions/1' });
    expect(res.statusCode).toBe(200);
    const body = json(res);
    expect(Object.keys(body.links.plans)).toEqual(['sm_80']);
    expect(body.links.plans.sm_80).toMatch(/\/v1\/models\/detector\/versions\/1\/plans\/sm_80$/);
    expect(body.links.build).toMatch(new RegExp(`/v1/builds/${firstBuildId}$`));
  });

  it('returns plan metadata with a working presigned download URL', async () => {
    const res = await request(api, { method: 'GET', url: '/v1/models/detector/versions/1/plans/sm_80' });
    expect(res.statusCode).toBe(200);
    const plan = json(res);
    expect(plan).toMatchObject({
      model: 'detector',
      version: 1,
      target: 'sm_80',
      sha256: createHash('sha256').update(planBytes).digest('hex'),
      size: planBytes.length,
      precision: 'fp16',
      tuned: false,
      optimizerVersion: '0.1.0-test',
      header: { formatVersion: 1, sm: 80, precision: 'fp16' },
      verification: { maxAbsError: 0.001, passed: true },
      buildMs: 1234,
    });
    expect(Date.parse(plan.download.expiresAt)).toBeGreaterThan(Date.now());
    const download = await fetch(plan.download.url);
    expect(download.status).toBe(200);
    expect(Buffer.from(await download.arrayBuffer()).equals(planBytes)).toBe(true);
  });

  it('shows a finished build: per-target outcome, durations, plan links', async () => {
    const ds = await createDataSource(api.config.databaseUrl).initialize();
    try {
      // What the workers and the finalize job record: sm_80 built, sm_86 failed for good.
      const builds = new BuildRepository(ds);
      await builds.markTargetRunning(firstBuildId, 'sm_80', 'worker-a', 1);
      await builds.markTargetRunning(firstBuildId, 'sm_86', 'worker-b', 1);
      await builds.updateTargetProgress(firstBuildId, 'sm_86', 'fusing', 40);
      const running = json(await request(api, { method: 'GET', url: `/v1/builds/${firstBuildId}` }));
      expect(running.status).toBe('running');
      expect(running.targets[1]).toMatchObject({ target: 'sm_86', status: 'running', stage: 'fusing', progress: 40, attempts: 1, workerId: 'worker-b' });
      expect(running.targets[1].timings.queuedMs).toBeGreaterThanOrEqual(0);

      await builds.markTargetSucceeded(firstBuildId, 'sm_80');
      await builds.markTargetFailed(firstBuildId, 'sm_86', 'E_SHAPE', 'cannot infer the shape of conv_out');
      await new VersionRepository(ds).finalize(firstBuildId);
    } finally {
      await ds.destroy();
    }
    const res = await request(api, { method: 'GET', url: `/v1/builds/${firstBuildId}` });
    expect(res.statusCode).toBe(200);
    const build = json(res);
    expect(build).toMatchObject({ status: 'partial', model: 'detector', version: 1, error: 'sm_86: E_SHAPE' });
    expect(build.timings.totalMs).toBeGreaterThanOrEqual(0);
    const [sm80, sm86] = build.targets;
    expect(sm80).toMatchObject({ target: 'sm_80', status: 'succeeded', progress: 100, error: null });
    expect(sm80.links.plan).toMatch(/\/v1\/models\/detector\/versions\/1\/plans\/sm_80$/);
    expect(sm80.timings.runMs).toBeGreaterThanOrEqual(0);
    expect(sm86).toMatchObject({ target: 'sm_86', status: 'failed', error: { code: 'E_SHAPE', message: 'cannot infer the shape of conv_out' }, links: { plan: null } });

    const version = json(await request(api, { method: 'GET', url: '/v1/models/detector/versions/1' }));
    expect(version).toMatchObject({ status: 'partial', error: { failedTargets: [{ target: 'sm_86', code: 'E_SHAPE' }] } });
    expect(Date.parse(version.completedAt)).not.toBeNaN();
  });

  it('accepts only exact SMs for plans (400 naming the valid values)', async () => {
    const res = await request(api, { method: 'GET', url: '/v1/models/detector/versions/1/plans/ampere' });
    expect(res.statusCode).toBe(400);
    const body = json(res);
    expect(body.errors).toEqual([expect.objectContaining({ field: 'target' })]);
    expect(body.message).toContain('sm_80, sm_86, sm_87, sm_90');
  });

  it('says what is missing in its 404s', async () => {
    const cases: [string, number, RegExp][] = [
      ['/v1/models/nope/versions', 404, /model "nope" not found/],
      ['/v1/models/nope/versions/1', 404, /model "nope" not found/],
      ['/v1/models/detector/versions/9', 404, /model "detector" has no version 9/],
      ['/v1/models/detector/versions/9/plans/sm_80', 404, /has no version 9/],
      // Failed in the finished-build case above.
      ['/v1/models/detector/versions/1/plans/sm_86', 404, /no plan for sm_86: it failed to build \(E_SHAPE: cannot infer/],
      ['/v1/models/detector/versions/2/plans/sm_90', 404, /no plan for sm_90 yet: the version is still building/],
      ['/v1/models/detector/versions/1/plans/sm_90', 404, /sm_90 is not a target of this version/],
      ['/v1/models/detector/versions/0', 400, /version: must be a positive integer/],
      ['/v1/models/detector/versions/abc/plans/sm_80', 400, /version: must be a positive integer/],
    ];
    for (const [url, status, message] of cases) {
      const res = await request(api, { method: 'GET', url });
      expect({ url, status: res.statusCode }).toEqual({ url, status });
      expect(json(res).message).toMatch(message);
    }
  });
});
