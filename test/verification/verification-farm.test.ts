/**
 * Verification and INT8 calibration through the farm: the API over real HTTP, a worker
 * (startWorker) for sm_80, Redis, Postgres and S3. A verified plan stores its numbers and the
 * plan endpoint serves them; a plan outside its tolerance fails the target with E_VERIFICATION
 * and leaves no plan row and no plan object; INT8 builds calibrate from an uploaded .npz or reuse
 * an uploaded calibration table; bad calibration uploads are refused (400) with nothing stored.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { startWorker, type WorkerHandle } from '../../apps/worker/src/index.js';
import { buildPlan } from '../../libs/native/index.js';
import { cleanupTestConfig } from '../helpers/env.js';
import { tinyConvNet } from '../helpers/onnx-builder.js';
import {
  json,
  listObjectKeys,
  multipartBody,
  multipartHeaders,
  request,
  rowCounts,
  sql,
  startApi,
  uploadDirEntries,
  type ApiUnderTest,
  type HttpResult,
  type Part,
} from '../api/api-test-kit.js';
import { npy, uniform, zip } from './npz-kit.js';
import { Readable } from 'node:stream';
import { FlowProducer } from 'bullmq';
import { Redis } from 'ioredis';
import { calibrationArchiveKey } from '../../apps/worker/src/calibration/index.js';
import {
  JOB_NAMES,
  finalizeJobOptions,
  finalizeQueueName,
  parseBuildSpec,
  planSpecHash,
  targetJobOptions,
  targetQueueName,
  type TargetJobData,
} from '../../libs/contracts/index.js';
import { VersionRepository, createDataSource } from '../../libs/registry/index.js';
import { ObjectStorage, modelKey } from '../../libs/storage/index.js';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const MODEL = tinyConvNet();
/** The tiny CNN's input: [batch, 3, 8, 8], float32. */
const SAMPLE = 3 * 8 * 8;

let api: ApiUnderTest;
let worker: WorkerHandle;
let scratch: string;

beforeAll(async () => {
  api = await startApi({ WORKER_TARGETS: 'sm_80' });
  worker = await startWorker(api.config, { logger: pino({ level: process.env.PLANFORGE_TEST_LOGS ? 'info' : 'silent' }) });
  scratch = mkdtempSync(join(tmpdir(), 'planforge-verif-farm-'));
});

afterAll(async () => {
  await worker?.close();
  await api?.app.close();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  await cleanupTestConfig();
});

function post(spec: unknown, extra: Part[] = [], model: Buffer = MODEL): Promise<HttpResult> {
  const parts: Part[] = [{ name: 'spec', value: JSON.stringify(spec) }, { name: 'model', value: model, filename: 'model.onnx' }, ...extra];
  return request(api, { method: 'POST', url: '/v1/builds', headers: multipartHeaders(), payload: multipartBody(parts) });
}

async function waitForBuild(buildId: string, timeoutMs = 90_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const build = json(await request(api, { url: `/v1/builds/${buildId}` }));
    if (!['queued', 'running'].includes(build.status)) return build;
    if (Date.now() > deadline) throw new Error(`build ${buildId} still ${build.status}: ${JSON.stringify(build.targets)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function submitAndWait(spec: Record<string, unknown>, extra: Part[] = []): Promise<{ submitted: any; build: any }> {
  const res = await post({ targets: ['sm_80'], ...spec }, extra);
  expect(res.statusCode).toBe(202);
  const submitted = json(res);
  return { submitted, build: await waitForBuild(submitted.buildId) };
}

const calibrationPart = (archive: Buffer, filename = 'calib.npz'): Part => ({ name: 'calibration', value: archive, filename, contentType: 'application/zip' });

/** Everything a refused request could have left behind. */
async function footprint() {
  return { rows: await rowCounts(api.config), keys: await listObjectKeys(api.config), uploads: uploadDirEntries(api.config) };
}

describe('verification in the farm', () => {
  it('stores the verification numbers of a passing FP32 plan and serves them with the plan', async () => {
    const { submitted, build } = await submitAndWait({ model: 'verif-fp32' });
    expect({ status: build.status, error: build.targets[0].error }).toEqual({ status: 'succeeded', error: null });
    const rows = await sql<{ verification: any; precision: string }>(api.config, 'SELECT verification, precision FROM plans WHERE model_version_id = $1', [build.modelVersionId]);
    expect(rows).toHaveLength(1);
    const v = rows[0].verification;
    expect(v).toMatchObject({ passed: true, samples: 4, inputs: 'random', seed: 1, precision: 'fp32', top1: 1, failures: [], tolerance: { maxAbs: 1e-3 } });
    expect(v.maxAbs).toBeLessThan(1e-4);
    expect(v.outputs.output).toMatchObject({ top1: 1 });
    expect(typeof v.durationMs).toBe('number');

    const plan = json(await request(api, { url: `/v1/models/verif-fp32/versions/${submitted.version}/plans/sm_80` }));
    expect(plan.verification).toEqual(v);
  });

  it('fails a plan outside its tolerance with E_VERIFICATION and the numbers, once, storing no plan', async () => {
    const planKeysBefore = (await listObjectKeys(api.config)).filter((k) => k.startsWith('plans/'));
    const { build } = await submitAndWait({ model: 'verif-fp16-strict', precision: 'fp16', verification: { samples: 2, seed: 7, tolerance: { maxAbs: 0 } } });
    expect(build.status).toBe('failed');
    const [target] = build.targets;
    expect(target).toMatchObject({ target: 'sm_80', status: 'failed', attempts: 1, error: { code: 'E_VERIFICATION' } });
    expect(target.error.message).toMatch(/fp16, 2 samples, seed 7; max abs [0-9.e-]+/);
    expect(target.error.message).toMatch(/output 'output': max abs error [0-9.e-]+ .*exceeds 0/);
    expect(await sql(api.config, 'SELECT id FROM plans WHERE model_version_id = $1', [build.modelVersionId])).toEqual([]);
    // The plan was never uploaded: the bucket has the same plan objects as before.
    expect((await listObjectKeys(api.config)).filter((k) => k.startsWith('plans/'))).toEqual(planKeysBefore);
    const version = json(await request(api, { url: `/v1/models/verif-fp16-strict/versions/${build.version}/plans/sm_80` }));
    expect(version.statusCode).toBe(404);
  });
});

describe('INT8 calibration uploads', () => {
  const profiles = { input: { min: [1, 3, 8, 8], opt: [4, 3, 8, 8], max: [8, 3, 8, 8] } };

  it('builds an INT8 plan from an uploaded .npz, verified on top-1 agreement', async () => {
    const archive = zip([{ name: 'input.npy', data: npy([32, 3, 8, 8], uniform(32 * SAMPLE, 11)) }], true);
    const { build } = await submitAndWait(
      // percentile: entropy calibration over this toy model's 4-wide pooled features is too sparse a histogram (see report)
      { model: 'verif-int8', precision: 'int8', profiles, calibration: { method: 'percentile', percentile: 99.9 }, verification: { samples: 8 } },
      [calibrationPart(archive)],
    );
    expect({ status: build.status, error: build.targets[0].error }).toEqual({ status: 'succeeded', error: null });
    const [row] = await sql<{ verification: any; precision: string; header: any }>(
      api.config,
      'SELECT verification, precision, header FROM plans WHERE model_version_id = $1',
      [build.modelVersionId],
    );
    expect(row.precision).toBe('int8');
    expect(row.verification).toMatchObject({ passed: true, precision: 'int8', samples: 8, inputs: 'calibration', inputShapes: { input: [4, 3, 8, 8] }, tolerance: { minTop1: 0.9 } });
    expect(row.verification.top1).toBeGreaterThanOrEqual(0.9);
    expect(row.verification.maxAbs).toBeGreaterThan(0); // really quantized
    expect(await listObjectKeys(api.config)).toContain(`calibration/${sha256(archive)}.npz`);
  });

  it('accepts per-sample archives and calibration tables instead of samples', async () => {
    const perSample = zip(Array.from({ length: 6 }, (_, k) => ({ name: `input/${k}.npy`, data: npy([3, 8, 8], uniform(SAMPLE, 100 + k)) })));
    const first = await submitAndWait({ model: 'verif-int8-samples', precision: 'int8', calibration: { method: 'minmax' } }, [calibrationPart(perSample)]);
    expect({ status: first.build.status, error: first.build.targets[0].error }).toEqual({ status: 'succeeded', error: null });
    const [perSampleRow] = await sql<{ verification: any }>(api.config, 'SELECT verification FROM plans WHERE model_version_id = $1', [first.build.modelVersionId]);
    expect(perSampleRow.verification).toMatchObject({ passed: true, inputs: 'calibration', samples: 4, inputShapes: { input: [1, 3, 8, 8] } });

    // A table as `planforge-opt --calib-cache` writes it, from the same samples.
    const model = join(scratch, 'tiny.onnx');
    writeFileSync(model, MODEL);
    const dataDir = join(scratch, 'calib');
    for (let k = 0; k < 4; k++) {
      const batch = join(dataDir, `b${k}`);
      mkdirSync(batch, { recursive: true });
      writeFileSync(join(batch, 'input.npy'), npy([1, 3, 8, 8], uniform(SAMPLE, 200 + k)));
    }
    const tableFile = join(scratch, 'table.json');
    await buildPlan({ modelPath: model, outputPath: join(scratch, 'x.plan'), target: 'sm_80', precision: 'int8', calibration: { dataDir, cacheFile: tableFile, method: 'minmax' } });
    const table = readFileSync(tableFile);
    const second = await submitAndWait({ model: 'verif-int8-table', precision: 'int8' }, [
      { name: 'calibrationTable', value: table, filename: 'table.json', contentType: 'application/json' },
    ]);
    expect({ status: second.build.status, error: second.build.targets[0].error }).toEqual({ status: 'succeeded', error: null });
    expect(await listObjectKeys(api.config)).toContain(`calibration/${sha256(table)}.json`);
    const [tableRow] = await sql<{ verification: any }>(api.config, 'SELECT verification FROM plans WHERE model_version_id = $1', [second.build.modelVersionId]);
    expect(tableRow.verification).toMatchObject({ passed: true, inputs: 'random', precision: 'int8' });
  });

  it('refuses INT8 without calibration data, naming the calibration part', async () => {
    const before = await footprint();
    const res = await post({ model: 'verif-int8-nodata', targets: ['sm_80'], precision: 'int8' });
    expect(res.statusCode).toBe(400);
    expect(json(res).errors).toEqual([{ field: 'calibration', message: expect.stringMatching(/INT8 needs calibration data/) }]);
    expect(await footprint()).toEqual(before);
  });

  it.each([
    ['not a zip', Buffer.from('this is not a zip archive at all'), /not a zip archive/],
    ['a path traversal entry', zip([{ name: '../../input.npy', data: npy([4, 3, 8, 8], uniform(4 * SAMPLE, 1)) }]), /'\.\.' segment \(path traversal\)/],
    ['an entry for an unknown input', zip([{ name: 'pixels.npy', data: npy([4, 3, 8, 8], uniform(4 * SAMPLE, 1)) }]), /'pixels.npy' does not name a model input \(inputs: 'input'\)/],
    ['samples of the wrong shape', zip([{ name: 'input.npy', data: npy([4, 3, 9, 9], uniform(4 * 243, 1)) }]), /shape \(4, 3, 9, 9\)/],
  ])('refuses a calibration archive that is %s (400, nothing stored)', async (_what, archive, message) => {
    const before = await footprint();
    const res = await post({ model: 'verif-int8-bad', targets: ['sm_80'], precision: 'int8' }, [calibrationPart(archive)]);
    expect(res.statusCode).toBe(400);
    const body = json(res);
    expect(body.errors).toEqual([{ field: 'calibration', message: expect.stringMatching(message) }]);
    expect(body.message).toMatch(/^calibration: /);
    expect(await footprint()).toEqual(before);
  });
});

describe('calibration upload limit', () => {
  let small: ApiUnderTest;

  beforeAll(async () => {
    small = await startApi({ MAX_CALIBRATION_BYTES: '4096' });
  });

  afterAll(async () => {
    await small?.app.close();
  });

  it('refuses an archive over MAX_CALIBRATION_BYTES (413 naming calibration, nothing stored)', async () => {
    const archive = zip([{ name: 'input.npy', data: npy([8, 3, 8, 8], uniform(8 * SAMPLE, 5)) }]);
    expect(archive.length).toBeGreaterThan(4096);
    const parts: Part[] = [
      { name: 'spec', value: JSON.stringify({ model: 'verif-too-big', targets: ['sm_80'], precision: 'int8' }) },
      { name: 'model', value: MODEL, filename: 'model.onnx' },
      calibrationPart(archive),
    ];
    const res = await request(small, { method: 'POST', url: '/v1/builds', headers: multipartHeaders(), payload: multipartBody(parts) });
    expect(res.statusCode).toBe(413);
    expect(json(res).errors).toEqual([{ field: 'calibration', message: expect.stringMatching(/MAX_CALIBRATION_BYTES/) }]);
    expect(await rowCounts(small.config)).toMatchObject({ models: 0, model_versions: 0, builds: 0 });
    expect(await listObjectKeys(small.config)).toEqual([]);
    expect(uploadDirEntries(small.config)).toEqual([]);
  });
});

describe('calibration data in the worker', () => {
  it('fails a job whose stored archive does not fit the model with E_CALIBRATION, once', async () => {
    // The API never queues such an archive: this is a job written by hand (another producer, a bug).
    const storage = new ObjectStorage(api.config.s3);
    const ds = await createDataSource(api.config.databaseUrl, { poolSize: 2 }).initialize();
    const redis = new Redis(api.config.redisUrl, { maxRetriesPerRequest: null });
    const flows = new FlowProducer({ connection: redis, prefix: api.config.bullPrefix });
    try {
      const spec = parseBuildSpec({ model: 'verif-worker-bad-calib', targets: ['sm_80'], precision: 'int8' });
      const modelSha256 = sha256(MODEL);
      await storage.uploadStream(modelKey(modelSha256), Readable.from([MODEL]), { sha256: modelSha256 });
      const archive = zip([{ name: 'pixels.npy', data: npy([2, 3, 8, 8], uniform(2 * SAMPLE, 3)) }]);
      const archiveSha256 = sha256(archive);
      await storage.uploadStream(calibrationArchiveKey(archiveSha256), Readable.from([archive]), { sha256: archiveSha256 });
      const specHash = planSpecHash(spec, { calibrationSha256: archiveSha256 });
      const { build, version } = await new VersionRepository(ds).createVersionWithBuild({
        modelName: spec.model,
        modelSha256,
        modelKey: modelKey(modelSha256),
        modelSize: MODEL.length,
        spec,
        specHash,
        targets: spec.targets,
      });
      const data: TargetJobData = {
        buildId: build.id,
        modelName: spec.model,
        modelVersionId: version.id,
        version: version.version,
        target: 'sm_80',
        modelKey: modelKey(modelSha256),
        modelSha256,
        spec,
        specHash,
        calibrationKey: calibrationArchiveKey(archiveSha256),
        calibrationSha256: archiveSha256,
      };
      await flows.add({
        name: JOB_NAMES.finalizeBuild,
        queueName: finalizeQueueName(api.config.queuePrefix),
        data: { buildId: build.id, modelVersionId: version.id },
        opts: finalizeJobOptions(build.id),
        children: [{ name: JOB_NAMES.buildTarget, queueName: targetQueueName('sm_80', api.config.queuePrefix), data, opts: targetJobOptions(build.id, 'sm_80') }],
      });
      const done = await waitForBuild(build.id);
      expect(done.status).toBe('failed');
      expect(done.targets[0]).toMatchObject({ status: 'failed', attempts: 1, error: { code: 'E_CALIBRATION' } });
      expect(done.targets[0].error.message).toMatch(/'pixels.npy' does not name a model input/);
      expect(readdirSync(join(api.config.workDir, 'calibration'))).toEqual([]); // the job's folder is gone
    } finally {
      await flows.close();
      await redis.quit();
      await ds.destroy();
      await storage.close();
    }
  });
});
