/** Group commit of fully cached pushes: VersionRepository.createCachedVersions and CachedVersionBatcher. */
import type { AppConfig } from '../../libs/config/index.js';
import type { BuildSpec, Target } from '../../libs/contracts/index.js';
import { VersionAdminRepository, VersionRepository, createDataSource, type CachedVersionInput, type CreatedCachedVersion, type PlanCopy, type RegistryDataSource } from '../../libs/registry/index.js';
import { CachedVersionBatcher } from '../../apps/api/src/services/cached-version-batcher.js';
import { cleanupTestConfig, testConfig } from '../helpers/env.js';

const SHA = 'd'.repeat(64);

function plan(target: Target, sha256 = 'e'.repeat(64)): PlanCopy {
  return {
    target,
    s3Key: `plans/${sha256}.plan`,
    sha256,
    size: 99,
    precision: 'fp32',
    tuned: false,
    optimizerVersion: '0.1.0',
    header: { sm: Number(target.slice(3)) },
    verification: null,
    profile: { p50Ms: 1.5 },
  };
}

function push(model: string, n: number, targets: Target[] = ['sm_80', 'sm_90']): CachedVersionInput {
  const spec: BuildSpec = { model, targets, precision: 'fp32', profiles: {}, layerPrecisions: {}, labels: { n: String(n) } };
  return { modelSha256: SHA, modelKey: `models/${SHA}.onnx`, modelSize: 1234, spec, specHash: 'h'.repeat(64), source: { type: 'test', n }, plans: targets.map((t) => plan(t)) };
}

describe('cached versions (group commit)', () => {
  let config: AppConfig;
  let ds: RegistryDataSource;
  let versions: VersionRepository;

  beforeAll(async () => {
    config = await testConfig();
    ds = await createDataSource(config.databaseUrl).initialize();
    versions = new VersionRepository(ds);
  });
  afterAll(async () => {
    await ds?.destroy();
    await cleanupTestConfig();
  });

  it('inserts a batch after the existing versions: complete versions, succeeded builds, cache-hit targets, copied plans', async () => {
    await versions.createVersionWithBuild({ ...push('batch', 0), modelName: 'batch', targets: ['sm_80'] });
    const created = await versions.createCachedVersions('batch', [push('batch', 1), push('batch', 2, ['sm_86'])]);
    expect(created.map((c) => c.version)).toEqual([2, 3]);
    expect(created[1].targets).toEqual(['sm_86']);
    const rows: { version: number; status: string; build_id: string; source: unknown; b_status: string; b_version: string; t: string; p: string; completed: boolean }[] = await ds.query(
      `SELECT v.version, v.status, v.build_id, v.source, b.status AS b_status, b.model_version_id AS b_version, v.completed_at IS NOT NULL AS completed,
              (SELECT string_agg(t.target || ':' || t.status || ':' || t.cache_hit || ':' || t.progress, ',' ORDER BY t.target) FROM build_targets t WHERE t.build_id = b.id) AS t,
              (SELECT string_agg(p.target || ':' || p.s3_key || ':' || p.size || ':' || (p.verification IS NULL) || ':' || (p.profile->>'p50Ms'), ',' ORDER BY p.target) FROM plans p WHERE p.model_version_id = v.id) AS p
       FROM model_versions v JOIN models m ON m.id = v.model_id JOIN builds b ON b.id = v.build_id WHERE m.name = 'batch' AND v.version > 1 ORDER BY v.version`,
    );
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatchObject({ version: 2, status: 'complete', build_id: created[0].buildId, source: { type: 'test', n: 1 }, b_status: 'succeeded', completed: true });
    expect(rows[0].b_version).toBe(created[0].versionId);
    expect(rows[0].t).toBe('sm_80:succeeded:true:100,sm_90:succeeded:true:100');
    expect(rows[0].p).toBe(`sm_80:plans/${'e'.repeat(64)}.plan:99:true:1.5,sm_90:plans/${'e'.repeat(64)}.plan:99:true:1.5`);
    expect(rows[1].t).toBe('sm_86:succeeded:true:100');
  });

  it('takes numbers from the model row: both paths share the counter, a deleted newest version is not reused', async () => {
    const one = await versions.createVersionWithBuild({ ...push('counter', 0), modelName: 'counter', targets: ['sm_80'] });
    const [two, three] = await versions.createCachedVersions('counter', [push('counter', 1), push('counter', 2)]);
    expect([one.version.version, two.version, three.version]).toEqual([1, 2, 3]);
    expect(one.model.lastVersion).toBe(1);
    expect(await new VersionAdminRepository(ds).deleteVersion(three.versionId)).toBe(true);
    const four = await versions.createVersionWithBuild({ ...push('counter', 3), modelName: 'counter', targets: ['sm_80'] });
    expect(four.version.version).toBe(4);
    // A push that fails rolls its number back with it: still no gap.
    await expect(versions.createCachedVersions('counter', [{ ...push('counter', 4), plans: [plan('sm_80', 'not-hex'.padEnd(64, 'x'))] }])).rejects.toThrow(/ck_plans_sha256/);
    const [five] = await versions.createCachedVersions('counter', [push('counter', 5)]);
    expect(five.version).toBe(5);
  });

  it('refuses malformed input before touching the database', async () => {
    await expect(versions.createCachedVersions('bad', [{ ...push('bad', 1), modelSha256: 'nope' }])).rejects.toThrow(/modelSha256/);
    await expect(versions.createCachedVersions('bad', [{ ...push('bad', 1), plans: [] }])).rejects.toThrow(/one plan per target/);
    expect(await ds.query(`SELECT 1 FROM models WHERE name = 'bad'`)).toEqual([]);
  });

  it('batches concurrent pushes into few transactions with gap-free numbers; a bad push fails alone', async () => {
    const batcher = new CachedVersionBatcher(versions);
    let transactions = 0;
    const counting = Object.create(versions) as VersionRepository;
    counting.createCachedVersions = (model, inputs) => {
      transactions++;
      return versions.createCachedVersions(model, inputs);
    };
    const counted = new CachedVersionBatcher(counting);
    const results = await Promise.all(Array.from({ length: 60 }, (_, i) => counted.register('group', push('group', i))));
    expect(results.map((r) => r.version).sort((a, b) => a - b)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    // The first push commits alone; the rest queue behind it and go out together.
    expect(transactions).toBeLessThan(10);

    // A plan row that violates a constraint (sha256 not hex) sinks its batch; its neighbours are retried one by one.
    const bad: CachedVersionInput = { ...push('group', 99), plans: [plan('sm_80', 'X'.repeat(64))] };
    const settled = await Promise.allSettled([batcher.register('group', push('group', 100)), ...[push('group', 101), bad, push('group', 102)].map((p) => batcher.register('group', p))]);
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    const numbers = settled.filter((s): s is PromiseFulfilledResult<CreatedCachedVersion> => s.status === 'fulfilled').map((s) => s.value.version).sort((a, b) => a - b);
    expect(numbers).toEqual([61, 62, 63]);
    const [{ n, max }]: { n: number; max: number }[] = await ds.query(
      `SELECT count(*)::int AS n, max(version) AS max FROM model_versions v JOIN models m ON m.id = v.model_id WHERE m.name = 'group'`,
    );
    expect({ n, max }).toEqual({ n: 63, max: 63 });
  });
});
