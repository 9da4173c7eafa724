/** Idempotency-Key on POST /v1/builds and the content-addressed build cache. */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { targetQueueName, type Target } from '../../libs/contracts/index.js';
import { OPTIMIZER_VERSION, buildPlan } from '../../libs/native/index.js';
import { cleanupTestConfig } from '../helpers/env.js';
import { makeModel, tinyConvNet } from '../helpers/onnx-builder.js';
import { QueueProbe, json, multipartBody, multipartHeaders, request, sql, startApi, submit, submitParts, type ApiUnderTest, type HttpResult } from '../api/api-test-kit.js';
import { mintKeys, openRegistry, type Registry } from './lifecycle-kit.js';
import { npy } from '../verification/npz-kit.js';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { planKey } from '../../libs/storage/index.js';

/** What a worker leaves behind for a target: plan bytes in S3, the plan row, the target succeeded; then finalize. */
async function completeLikeAWorker(reg: Registry, buildId: string): Promise<Record<string, string>> {
  const build = (await reg.builds.get(buildId))!;
  const dir = mkdtempSync(join(tmpdir(), 'cache-plan-'));
  const shas: Record<string, string> = {};
  try {
    for (const t of build.targetStates) {
      const bytes = Buffer.from(`PFPLAN ${t.target} ${randomBytes(8).toString('hex')}`);
      const sha = createHash('sha256').update(bytes).digest('hex');
      writeFileSync(join(dir, sha), bytes);
      await reg.storage.uploadFile(planKey(sha), join(dir, sha), { sha256: sha });
      await reg.builds.markTargetRunning(buildId, t.target, 'test-worker', 1);
      await reg.plans.recordPlan({
        modelVersionId: build.modelVersionId,
        target: t.target,
        s3Key: planKey(sha),
        sha256: sha,
        size: bytes.length,
        precision: build.spec.precision,
        tuned: false,
        optimizerVersion: OPTIMIZER_VERSION,
        header: { sm: Number(t.target.slice(3)) },
        verification: { passed: true, maxAbsError: 1e-4 },
        buildMs: 1000,
      });
      await reg.builds.markTargetSucceeded(buildId, t.target);
      shas[t.target] = sha;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  await reg.versions.finalize(buildId);
  return shas;
}

async function queuedJobs(probe: QueueProbe, api: ApiUnderTest, target: Target): Promise<number> {
  const counts = await probe.queue(targetQueueName(target, api.config.queuePrefix)).getJobCounts();
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

/** A valid ONNX model of about `bytes` bytes: a Relu with one large (unused by the math) initializer. */
function bigModel(bytes: number): Buffer {
  const floats = Math.floor(bytes / 4);
  return makeModel({
    graphName: 'big',
    inputs: [{ name: 'x', dtype: 'float32', shape: [1, 4] }],
    outputs: [{ name: 'y', dtype: 'float32', shape: [1, 4] }],
    initializers: [{ name: 'ballast', dims: [floats], raw: randomBytes(floats * 4) }],
    nodes: [{ op: 'Relu', name: 'relu', inputs: ['x'], outputs: ['y'] }],
  });
}

/** The same bytes to a server that only reads them: what the upload alone costs on this machine. */
async function rawUploadMs(body: Buffer): Promise<number> {
  const sink = http.createServer((req, res) => {
    req.on('data', () => undefined);
    req.on('end', () => res.writeHead(204).end());
  });
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
  try {
    const port = (sink.address() as AddressInfo).port;
    const started = performance.now();
    await new Promise<void>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/', headers: { ...multipartHeaders(), 'content-length': body.length }, agent: false }, (res) => {
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', reject);
      req.end(body);
    });
    return performance.now() - started;
  } finally {
    await new Promise((resolve) => sink.close(resolve));
  }
}

describe('idempotency and the build cache', () => {
  let api: ApiUnderTest;
  let reg: Registry;
  let probe: QueueProbe;

  beforeAll(async () => {
    api = await startApi();
    reg = await openRegistry(api);
    probe = new QueueProbe(api.config);
  });
  afterAll(async () => {
    await probe?.close();
    await reg?.close();
    await api?.app.close();
    await cleanupTestConfig();
  });

  const idem = (key: string, spec: unknown, model: Buffer, apiKey = api.apiKey): Promise<HttpResult> =>
    request(api, {
      method: 'POST',
      url: '/v1/builds',
      headers: { ...multipartHeaders(), 'idempotency-key': key, authorization: `Bearer ${apiKey}` },
      payload: multipartBody(submitParts({ spec, model })),
    });

  it('replays the same request under the same Idempotency-Key and refuses a different one', async () => {
    const spec = { model: 'idem', targets: ['sm_86'] };
    const model = tinyConvNet({ size: 9 });
    const first = await idem('deploy-42', spec, model);
    expect(first.statusCode).toBe(202);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    const again = await idem('deploy-42', spec, model);
    expect(again.statusCode).toBe(200);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(json(again)).toEqual(json(first));
    const [{ n }] = await sql<{ n: number }>(api.config, `SELECT count(*)::int AS n FROM builds`);
    expect(n).toBe(1);
    expect(await queuedJobs(probe, api, 'sm_86')).toBe(1);

    const otherSpec = await idem('deploy-42', { ...spec, precision: 'fp16' }, model);
    expect(otherSpec.statusCode).toBe(409);
    expect(json(otherSpec).code).toBe('E_IDEMPOTENCY_CONFLICT');
    const otherModel = await idem('deploy-42', spec, tinyConvNet({ size: 10 }));
    expect(otherModel.statusCode).toBe(409);

    // Keys are scoped per API key: another caller's "deploy-42" is its own.
    const { submitter } = await mintKeys(api);
    const theirs = await idem('deploy-42', spec, model, submitter);
    expect(theirs.statusCode).toBe(202);
    expect(json(theirs).buildId).not.toBe(json(first).buildId);
    expect((await idem('bad key with spaces', spec, model)).statusCode).toBe(400);
  });

  it('counts the calibration upload as part of the request under an Idempotency-Key', async () => {
    // Two valid calibration tables for the same model, as `planforge-opt --calib-cache` writes them.
    const model = tinyConvNet({ size: 8 });
    const dir = mkdtempSync(join(tmpdir(), 'idem-calib-'));
    const tables: Buffer[] = [];
    try {
      writeFileSync(join(dir, 'm.onnx'), model);
      for (const scale of [1, 3]) {
        const batch = join(dir, `calib-${scale}`, 'b0');
        mkdirSync(batch, { recursive: true });
        const data = Float32Array.from({ length: 3 * 8 * 8 }, (_, i) => ((i % 17) / 17) * scale);
        writeFileSync(join(batch, 'input.npy'), npy([1, 3, 8, 8], data));
        const table = join(dir, `table-${scale}.json`);
        await buildPlan({ modelPath: join(dir, 'm.onnx'), outputPath: join(dir, 'x.plan'), target: 'sm_80', precision: 'int8', calibration: { dataDir: join(dir, `calib-${scale}`), cacheFile: table, method: 'minmax' } });
        tables.push(readFileSync(table));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(tables[0].equals(tables[1])).toBe(false);
    const spec = { model: 'idem-int8', targets: ['sm_80'], precision: 'int8' };
    const post = (table: Buffer) =>
      request(api, {
        method: 'POST',
        url: '/v1/builds',
        headers: { ...multipartHeaders(), 'idempotency-key': 'calib-1' },
        payload: multipartBody([...submitParts({ spec, model }), { name: 'calibrationTable', value: table, filename: 'table.json', contentType: 'application/json' }]),
      });
    const first = await post(tables[0]);
    expect(first.statusCode).toBe(202);
    expect((await post(tables[0])).statusCode).toBe(200);
    const other = await post(tables[1]);
    expect(other.statusCode).toBe(409);
    expect(json(other).message).toMatch(/calibration data/);
  });

  it('satisfies targets from the cache: no job is queued for them, cacheHit shows in the build', async () => {
    const model = tinyConvNet({ size: 12 });
    const first = json(await submit(api, { spec: { model: 'cached-a', targets: ['sm_80', 'sm_90'] }, model }));
    expect(first).toMatchObject({ status: 'queued', cacheHits: [] });
    const planShas = await completeLikeAWorker(reg, first.buildId);
    const jobs = { sm_80: await queuedJobs(probe, api, 'sm_80'), sm_87: await queuedJobs(probe, api, 'sm_87'), sm_90: await queuedJobs(probe, api, 'sm_90') };

    // Same bytes, same plan-affecting spec (model name and labels do not count): every target hits.
    const hit = await submit(api, { spec: { model: 'cached-b', targets: ['sm_90', 'sm_80'], labels: { git: 'v2' } }, model });
    expect(hit.statusCode).toBe(202);
    const body = json(hit);
    expect(body).toMatchObject({ model: 'cached-b', version: 1, status: 'succeeded', cacheHits: ['sm_80', 'sm_90'] });
    expect(await queuedJobs(probe, api, 'sm_80')).toBe(jobs.sm_80);
    expect(await queuedJobs(probe, api, 'sm_90')).toBe(jobs.sm_90);
    const build = json(await request(api, { url: `/v1/builds/${body.buildId}` }));
    expect(build.status).toBe('succeeded');
    for (const t of build.targets) {
      expect(t).toMatchObject({ status: 'succeeded', cacheHit: true, stage: 'cache-hit', progress: 100, timings: { cacheHit: true, runMs: 0 } });
    }
    const version = json(await request(api, { url: '/v1/models/cached-b/versions/1' }));
    expect(version.status).toBe('complete');
    const plan = json(await request(api, { url: '/v1/models/cached-b/versions/1/plans/sm_90' }));
    expect(plan.sha256).toBe(planShas.sm_90);
    expect(plan.verification).toEqual({ passed: true, maxAbsError: 1e-4 });
    const rows = await sql<{ s3_key: string }>(api.config, `SELECT DISTINCT s3_key FROM plans WHERE target = 'sm_90'`);
    expect(rows).toEqual([{ s3_key: planKey(planShas.sm_90) }]);

    // Partial hit: only the missing target is queued.
    const partial = json(await submit(api, { spec: { model: 'cached-c', targets: ['sm_80', 'sm_87'] }, model }));
    expect(partial).toMatchObject({ status: 'queued', cacheHits: ['sm_80'] });
    expect(await queuedJobs(probe, api, 'sm_80')).toBe(jobs.sm_80);
    expect(await queuedJobs(probe, api, 'sm_87')).toBe(jobs.sm_87 + 1);
    const partialBuild = json(await request(api, { url: `/v1/builds/${partial.buildId}` }));
    expect(partialBuild.targets.map((t: any) => [t.target, t.status, t.cacheHit])).toEqual([
      ['sm_80', 'succeeded', true],
      ['sm_87', 'queued', false],
    ]);

    // A plan-affecting change (precision) misses.
    const miss = json(await submit(api, { spec: { model: 'cached-d', targets: ['sm_80'], precision: 'fp16' }, model }));
    expect(miss).toMatchObject({ status: 'queued', cacheHits: [] });
  });

  it('registers concurrent cache hits of one model as gap-free versions, committed in batches', async () => {
    const model = tinyConvNet({ size: 10 });
    const spec = { model: 'burst', targets: ['sm_80', 'sm_90'] };
    const first = json(await submit(api, { spec, model }));
    await completeLikeAWorker(reg, first.buildId);
    // A miss of the same model in the middle of the burst takes its number from the same lock.
    const missModel = tinyConvNet({ size: 11 });
    const results = await Promise.all([
      ...Array.from({ length: 40 }, (_, i) => submit(api, { spec: { ...spec, labels: { n: String(i) } }, model })),
      submit(api, { spec, model: missModel }),
    ]);
    expect(results.map((r) => r.statusCode)).toEqual(Array(41).fill(202));
    const bodies = results.map(json);
    const hits = bodies.slice(0, 40);
    for (const b of hits) expect(b).toMatchObject({ model: 'burst', status: 'succeeded', cacheHits: ['sm_80', 'sm_90'] });
    expect(bodies[40]).toMatchObject({ status: 'queued', cacheHits: [] });
    expect(bodies.map((b) => b.version).sort((a, b) => a - b)).toEqual(Array.from({ length: 41 }, (_, i) => i + 2));
    expect(new Set(bodies.map((b) => b.buildId)).size).toBe(41);

    // Each hit is a complete version with its own build, targets and plan rows (sharing the objects).
    const rows = await sql<{ version: number; status: string; build_status: string; targets: string; plans: string; source: unknown; labels: unknown }>(
      api.config,
      `SELECT v.version, v.status, b.status AS build_status, v.source, v.spec->'labels' AS labels,
              (SELECT string_agg(t.target || ':' || t.status || ':' || t.cache_hit, ',' ORDER BY t.target) FROM build_targets t WHERE t.build_id = b.id) AS targets,
              (SELECT string_agg(p.target || ':' || p.s3_key, ',' ORDER BY p.target) FROM plans p WHERE p.model_version_id = v.id) AS plans
       FROM model_versions v JOIN models m ON m.id = v.model_id JOIN builds b ON b.id = v.build_id
       WHERE m.name = 'burst' AND v.version > 1 ORDER BY v.version`,
    );
    const firstPlans = (await sql<{ plans: string }>(api.config, `SELECT string_agg(p.target || ':' || p.s3_key, ',' ORDER BY p.target) AS plans FROM plans p JOIN builds b ON b.model_version_id = p.model_version_id WHERE b.id = $1`, [first.buildId]))[0].plans;
    const hitVersions = new Set(hits.map((b) => b.version));
    for (const row of rows) {
      if (!hitVersions.has(row.version)) continue;
      expect(row).toMatchObject({ status: 'complete', build_status: 'succeeded', targets: 'sm_80:succeeded:true,sm_90:succeeded:true', plans: firstPlans });
      expect(row.source).toMatchObject({ type: 'upload', filename: 'model.onnx' });
    }
    expect(new Set(rows.filter((r) => hitVersions.has(r.version)).map((r) => JSON.stringify(r.labels))).size).toBe(40);
    const status = json(await request(api, { url: `/v1/builds/${hits[7].buildId}` }));
    expect(status).toMatchObject({ status: 'succeeded', version: hits[7].version });
  });

  it('makes a cache-hit submission of a 100 MB model cost little more than its upload', async () => {
    const model = bigModel(100 * 1024 * 1024);
    const spec = { model: 'big', targets: ['sm_90'] };
    const body = multipartBody(submitParts({ spec, model }));
    const t0 = performance.now();
    const first = await submit(api, { spec, model });
    const missMs = performance.now() - t0;
    expect(first.statusCode).toBe(202);
    await completeLikeAWorker(reg, json(first).buildId);

    const rawMs = await rawUploadMs(body);
    // The API's own cost of receiving the bytes (multipart parse, sha256, temp file), nothing else:
    // the file comes first and the spec after it is refused, so the whole file is spooled, then dropped.
    const t2 = performance.now();
    const receiveOnly = await submit(api, { spec: { ...spec, targets: ['sm_75'] }, model, order: 'file-first' });
    const receiveMs = performance.now() - t2;
    expect(receiveOnly.statusCode).toBe(400);
    const t1 = performance.now();
    const hit = await submit(api, { spec, model });
    const hitMs = performance.now() - t1;
    expect(hit.statusCode).toBe(202);
    expect(json(hit)).toMatchObject({ status: 'succeeded', cacheHits: ['sm_90'] });
    process.stdout.write(
      `[build-cache] ${(model.length / 1048576).toFixed(1)} MiB model: raw loopback upload ${rawMs.toFixed(0)} ms; ` +
        `upload received by the API (multipart + sha256 + temp file, then refused) ${receiveMs.toFixed(0)} ms; ` +
        `cache-hit submission ${hitMs.toFixed(0)} ms (+${(hitMs - receiveMs).toFixed(0)} ms over receiving); first (miss) submission ${missMs.toFixed(0)} ms\n`,
    );
    // A hit skips the ONNX parse, the S3 upload and the queue: little more than receiving the bytes
    // (generous bound: the test machine is shared and its timings swing).
    expect(hitMs).toBeLessThan(receiveMs * 3 + 1000);
    expect(hitMs).toBeLessThan(missMs);
  });
});
