/**
 * POST /v1/builds and GET /v1/builds/:id against real Postgres, S3 and Redis:
 * what a submission stores, what it queues, and how concurrent pushes are numbered.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import {
  JOB_NAMES,
  TARGET_JOB_ATTEMPTS,
  finalizeJobId,
  finalizeQueueName,
  targetJobId,
  targetQueueName,
  type TargetJobData,
} from '../../libs/contracts/index.js';
import { cleanupTestConfig } from '../helpers/env.js';
import { makeModel, tinyConvNet } from '../helpers/onnx-builder.js';
import {
  QueueProbe,
  json,
  listen,
  multipartBody,
  multipartHeaders,
  request,
  listObjectKeys,
  rowCounts,
  sql,
  startApi,
  submit,
  uploadDirEntries,
  type ApiUnderTest,
} from './api-test-kit.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A second, different model: input x[N,4] -> Relu -> y. */
function reluModel(): Buffer {
  return makeModel({
    inputs: [{ name: 'x', dtype: 'float32', shape: ['n', 4] }],
    outputs: [{ name: 'y', dtype: 'float32', shape: ['n', 4] }],
    nodes: [{ op: 'Relu', inputs: ['x'], outputs: ['y'] }],
  });
}

describe('POST /v1/builds', () => {
  let api: ApiUnderTest;
  let queues: QueueProbe;

  beforeAll(async () => {
    api = await startApi();
    queues = new QueueProbe(api.config);
  });
  afterAll(async () => {
    await queues?.close();
    await api?.app.close();
    await cleanupTestConfig();
  });

  it('stores the model, registers version 1 and queues one flow job per target', async () => {
    const model = tinyConvNet();
    const spec = {
      model: 'resnet-tiny',
      targets: ['sm_90', 'sm_80'],
      precision: 'fp16',
      profiles: { input: { min: [1, 3, 8, 8], opt: [4, 3, 8, 8], max: [8, 3, 8, 8] } },
      labels: { git: 'abc123' },
    };
    const res = await submit(api, { spec, model });
    expect(res.statusCode).toBe(202);
    const body = json(res);
    expect(body).toMatchObject({ model: 'resnet-tiny', version: 1, targets: ['sm_80', 'sm_90'], status: 'queued' });
    expect(body.buildId).toMatch(/^[0-9a-f-]{36}$/);
    expect(body.links.self).toMatch(new RegExp(`/v1/builds/${body.buildId}$`));
    expect(res.headers.location).toBe(body.links.self);

    // Postgres: model, version (building), build (queued), one row per target.
    const [version] = await sql(api.config, 'SELECT * FROM model_versions');
    expect(version).toMatchObject({ version: 1, status: 'building', model_sha256: sha256(model), model_key: `models/${sha256(model)}.onnx`, build_id: body.buildId });
    expect(Number(version.model_size)).toBe(model.length);
    const targets = await sql(api.config, 'SELECT target, status, attempts FROM build_targets WHERE build_id = $1 ORDER BY target', [body.buildId]);
    expect(targets).toEqual([
      { target: 'sm_80', status: 'queued', attempts: 0 },
      { target: 'sm_90', status: 'queued', attempts: 0 },
    ]);

    // S3: the model bytes at their content address; the temp file is gone.
    expect(await listObjectKeys(api.config)).toEqual([`models/${sha256(model)}.onnx`]);
    expect(uploadDirEntries(api.config)).toEqual([]);

    // Redis: a child per target queue with the job data the worker needs, under a finalize parent.
    for (const target of ['sm_80', 'sm_90'] as const) {
      const job = await queues.queue(targetQueueName(target, api.config.queuePrefix)).getJob(targetJobId(body.buildId, target));
      expect(job).toBeDefined();
      expect(job!.name).toBe(JOB_NAMES.buildTarget);
      expect(job!.opts.attempts).toBe(TARGET_JOB_ATTEMPTS);
      const data = job!.data as TargetJobData;
      expect(data).toMatchObject({
        buildId: body.buildId,
        modelName: 'resnet-tiny',
        modelVersionId: version.id,
        version: 1,
        target,
        modelKey: `models/${sha256(model)}.onnx`,
        modelSha256: sha256(model),
      });
      expect(data.spec).toMatchObject({ model: 'resnet-tiny', precision: 'fp16', targets: ['sm_80', 'sm_90'], labels: { git: 'abc123' } });
      expect(data.specHash).toBe(version.spec_hash);
      expect(job!.parentKey).toContain(finalizeJobId(body.buildId));
      // Every target job carries a priority (branch unless the spec or header says release): BullMQ keeps it in 'prioritized'.
      expect(await job!.getState()).toBe('prioritized');
    }
    const parent = await queues.queue(finalizeQueueName(api.config.queuePrefix)).getJob(finalizeJobId(body.buildId));
    expect(parent).toBeDefined();
    expect(parent!.name).toBe(JOB_NAMES.finalizeBuild);
    expect(parent!.data).toEqual({ buildId: body.buildId, modelVersionId: version.id });
    expect(await parent!.getState()).toBe('waiting-children');
  });

  it('reports the build with per-target state, timings and links', async () => {
    const res = await submit(api, { spec: { model: 'status-check', targets: ['sm_86'] }, model: reluModel() });
    expect(res.statusCode).toBe(202);
    const { buildId } = json(res);

    const got = await request(api, { method: 'GET', url: `/v1/builds/${buildId}` });
    expect(got.statusCode).toBe(200);
    const build = json(got);
    expect(build).toMatchObject({
      buildId,
      model: 'status-check',
      version: 1,
      status: 'queued',
      error: null,
      spec: { model: 'status-check', targets: ['sm_86'], precision: 'fp32' },
    });
    expect(Date.parse(build.timings.queuedAt)).not.toBeNaN();
    expect(build.timings).toMatchObject({ startedAt: null, finishedAt: null, queuedMs: null, runMs: null, totalMs: null });
    expect(build.targets).toEqual([
      expect.objectContaining({ target: 'sm_86', status: 'queued', stage: null, progress: 0, attempts: 0, error: null, links: { plan: null } }),
    ]);
    expect(build.links.self).toMatch(new RegExp(`/v1/builds/${buildId}$`));
    expect(build.links.version).toMatch(/\/v1\/models\/status-check\/versions\/1$/);

    // As a worker records progress, the API shows it (durations appear once both ends are known).
    await sql(api.config, `UPDATE build_targets SET status = 'failed', stage = 'failed', attempts = 3, started_at = now() - interval '2 seconds', finished_at = now(), error_code = 'E_UNSUPPORTED_OP', error_message = 'op Foo is not supported' WHERE build_id = $1`, [buildId]);
    const later = json(await request(api, { method: 'GET', url: `/v1/builds/${buildId}` }));
    expect(later.targets[0]).toMatchObject({ status: 'failed', attempts: 3, error: { code: 'E_UNSUPPORTED_OP', message: 'op Foo is not supported' } });
    expect(later.targets[0].timings.runMs).toBeGreaterThanOrEqual(1900);
  });

  it('accepts the file before the spec', async () => {
    const model = reluModel();
    const res = await submit(api, { spec: { model: 'file-first', targets: ['sm_87'] }, model, order: 'file-first' });
    expect(res.statusCode).toBe(202);
    expect(json(res)).toMatchObject({ model: 'file-first', version: 1, targets: ['sm_87'] });
    expect(uploadDirEntries(api.config)).toEqual([]);
  });

  it('accepts a spec part sent as application/json', async () => {
    const res = await request(api, {
      method: 'POST',
      url: '/v1/builds',
      headers: multipartHeaders(),
      payload: multipartBody([
        { name: 'spec', value: JSON.stringify({ model: 'json-part', targets: ['hopper'] }), contentType: 'application/json' },
        { name: 'model', value: reluModel(), filename: 'relu.onnx' },
      ]),
    });
    expect(res.statusCode).toBe(202);
    expect(json(res)).toMatchObject({ model: 'json-part', targets: ['sm_90'] });
  });

  it('queues a model with ops the optimizer lacks, with a warning naming them', async () => {
    const model = makeModel({
      inputs: [{ name: 'x', dtype: 'float32', shape: ['n', 4] }],
      outputs: [{ name: 'y', dtype: 'float32', shape: ['n', 4] }],
      nodes: [{ op: 'FancyOp', name: 'fancy', inputs: ['x'], outputs: ['y'] }],
    });
    const res = await submit(api, { spec: { model: 'custom-op', targets: ['sm_90'] }, model });
    expect(res.statusCode).toBe(202);
    expect(json(res).warnings).toEqual([expect.stringContaining('FancyOp')]);
  });

  it('expands target aliases (ampere -> sm_80 + sm_86) and queues each', async () => {
    const res = await submit(api, { spec: { model: 'alias-check', targets: ['ampere', 'sm_80'] }, model: reluModel() });
    expect(res.statusCode).toBe(202);
    const body = json(res);
    expect(body.targets).toEqual(['sm_80', 'sm_86']);
    for (const target of ['sm_80', 'sm_86'] as const) {
      const job = await queues.queue(targetQueueName(target, api.config.queuePrefix)).getJob(targetJobId(body.buildId, target));
      expect(job?.data.target).toBe(target);
    }
    const none = await queues.queue(targetQueueName('sm_90', api.config.queuePrefix)).getJob(targetJobId(body.buildId, 'sm_90'));
    expect(none).toBeUndefined();
  });

  it('numbers concurrent pushes of two models gap-free per model', async () => {
    const pushes = 5;
    const models = { 'race-a': tinyConvNet(), 'race-b': reluModel() };
    const responses = await Promise.all(
      Object.entries(models).flatMap(([name, bytes]) =>
        Array.from({ length: pushes }, () => submit(api, { spec: { model: name, targets: ['sm_90'] }, model: bytes })),
      ),
    );
    for (const r of responses) expect(r.statusCode).toBe(202);
    for (const name of Object.keys(models)) {
      const versions = responses.map((r) => json(r)).filter((b) => b.model === name).map((b) => b.version).sort((a, b) => a - b);
      expect(versions).toEqual([1, 2, 3, 4, 5]);
    }
    const buildIds = new Set(responses.map((r) => json(r).buildId));
    expect(buildIds.size).toBe(pushes * 2);
    expect(uploadDirEntries(api.config)).toEqual([]);
  });

  it('answers 400 for a malformed build id and 404 for an unknown one', async () => {
    const bad = await request(api, { method: 'GET', url: '/v1/builds/not-a-uuid' });
    expect(bad.statusCode).toBe(400);
    expect(json(bad)).toMatchObject({ statusCode: 400, error: 'Bad Request', errors: [{ field: 'id' }] });
    expect(json(bad).message).toContain('UUID');

    const missing = await request(api, { method: 'GET', url: '/v1/builds/00000000-0000-4000-8000-000000000000' });
    expect(missing.statusCode).toBe(404);
    expect(json(missing)).toMatchObject({ statusCode: 404, error: 'Not Found', message: 'build 00000000-0000-4000-8000-000000000000 not found' });
  });
});

/** A local port nothing listens on. */
async function deadPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('POST /v1/builds when Redis is down', () => {
  let api: ApiUnderTest;

  beforeAll(async () => {
    api = await startApi({ REDIS_URL: `redis://127.0.0.1:${await deadPort()}` });
  });
  afterAll(async () => {
    await api?.app.close();
    await cleanupTestConfig();
  });

  it('marks the recorded build failed instead of leaving it queued', async () => {
    // Postgres and S3 are up, so the version is recorded before the enqueue fails.
    const res = await submit(api, { spec: { model: 'no-redis', targets: ['sm_80', 'sm_90'] }, model: tinyConvNet() });
    expect(res.statusCode).toBe(503);
    const body = json(res);
    expect(body).toMatchObject({ statusCode: 503, code: 'E_ENQUEUE' });
    expect(body.message).toMatch(/could not be queued/);

    const [build] = await sql(api.config, 'SELECT id, status, finished_at, error FROM builds');
    expect(build.status).toBe('failed');
    expect(build.finished_at).not.toBeNull();
    const targets = await sql(api.config, 'SELECT status, error_code FROM build_targets WHERE build_id = $1', [build.id]);
    expect(targets).toEqual([
      { status: 'failed', error_code: 'E_ENQUEUE' },
      { status: 'failed', error_code: 'E_ENQUEUE' },
    ]);
    const [version] = await sql(api.config, 'SELECT status FROM model_versions');
    expect(version.status).toBe('failed');
    expect((await rowCounts(api.config)).builds).toBe(1);
    expect(uploadDirEntries(api.config)).toEqual([]);
  });
});

describe('POST /v1/builds when S3 is down', () => {
  let api: ApiUnderTest;

  beforeAll(async () => {
    api = await startApi();
  });
  afterAll(async () => {
    await api?.app.close();
    await cleanupTestConfig();
  });

  it('answers 503 and records nothing', async () => {
    // A second app on the same farm whose S3 endpoint nothing answers.
    const broken = await listen({ ...api.config, s3: { ...api.config.s3, endpoint: `http://127.0.0.1:${await deadPort()}` } });
    try {
      const res = await submit(broken, { spec: { model: 'no-s3', targets: ['sm_90'] }, model: tinyConvNet() });
      expect(res.statusCode).toBe(503);
      expect(json(res)).toMatchObject({ statusCode: 503, code: 'E_STORAGE' });
      expect(json(res).message).not.toMatch(/127\.0\.0\.1/);
      expect(await rowCounts(api.config)).toMatchObject({ models: 0, model_versions: 0, builds: 0 });
      expect(uploadDirEntries(api.config)).toEqual([]);
    } finally {
      await broken.app.close();
    }
  });
});
