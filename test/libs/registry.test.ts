import type { AppConfig } from '../../libs/config/index.js';
import type { BuildSpec, Target } from '../../libs/contracts/index.js';
import {
  ABANDONED_TARGET_CODE,
  BuildRepository,
  ModelRepository,
  PlanRepository,
  REGISTRY_MIGRATIONS,
  RegistryError,
  VersionRepository,
  createDataSource,
  type CreateVersionInput,
  type RegistryDataSource,
} from '../../libs/registry/index.js';
import { cleanupTestConfig, testConfig } from '../helpers/env.js';

const SHA_A = 'a'.repeat(64);
const SHA_B = 'b'.repeat(64);
const SHA_C = 'c'.repeat(64);

function spec(model: string, targets: Target[]): BuildSpec {
  return { model, targets, precision: 'fp32', profiles: {}, layerPrecisions: {}, labels: {} };
}

function push(modelName: string, targets: Target[] = ['sm_80', 'sm_90']): CreateVersionInput {
  return { modelName, modelSha256: SHA_A, modelKey: `models/${SHA_A}.onnx`, modelSize: 1234, spec: spec(modelName, targets), specHash: 'h'.repeat(64), targets };
}

async function tableNames(ds: RegistryDataSource): Promise<string[]> {
  const rows: { tablename: string }[] = await ds.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename");
  return rows.map((r) => r.tablename);
}

describe('registry', () => {
  let config: AppConfig;
  let ds: RegistryDataSource;
  let versions: VersionRepository;
  let builds: BuildRepository;
  let plans: PlanRepository;

  beforeAll(async () => {
    config = await testConfig();
    ds = await createDataSource(config.databaseUrl).initialize();
    versions = new VersionRepository(ds);
    builds = new BuildRepository(ds);
    plans = new PlanRepository(ds);
  });

  afterAll(async () => {
    await ds?.destroy();
    await cleanupTestConfig();
  });

  describe('migrations', () => {
    // Every migration, in order; and the tables they leave (later migrations add tables).
    const ALL_MIGRATIONS = REGISTRY_MIGRATIONS.map((m) => new m().name);
    const ALL_TABLES = [
      'api_keys', 'audit_log', 'build_targets', 'builds', 'channel_events', 'channel_pointers', 'channels', 'idempotency_keys',
      'model_versions', 'models', 'notification_outbox', 'plans', 'rollout_blocked_versions', 'rollout_policies', 'rollouts', 'telemetry_buckets', 'typeorm_migrations',
      'webhook_deliveries', 'webhook_triggers',
    ];

    it('go up, down and up again on a fresh database', async () => {
      const fresh = await testConfig();
      const mds = await createDataSource(fresh.databaseUrl, { migrationsRun: false, poolSize: 2 }).initialize();
      try {
        expect(await tableNames(mds)).toEqual([]);
        expect(await mds.runMigrationsLocked()).toEqual(ALL_MIGRATIONS);
        expect(await tableNames(mds)).toEqual(ALL_TABLES);
        expect(await mds.runMigrationsLocked()).toEqual([]);
        for (const _ of ALL_MIGRATIONS) await mds.undoLastMigration();
        expect(await tableNames(mds)).toEqual(['typeorm_migrations']);
        expect(await mds.runMigrationsLocked()).toEqual(ALL_MIGRATIONS);
        expect(await tableNames(mds)).toEqual(ALL_TABLES);
        // The schema works after the round trip.
        const created = await new VersionRepository(mds).createVersionWithBuild(push('roundtrip'));
        expect(created.version.version).toBe(1);
      } finally {
        await mds.destroy();
        await cleanupTestConfig(fresh);
      }
    });

    it('leave nothing for the entity metadata to change (entities describe the migrated schema)', async () => {
      const pending = await ds.driver.createSchemaBuilder().log();
      expect(pending.upQueries.map((q) => q.query)).toEqual([]);
    });

    it('run with a pool of one connection (the advisory lock has its own)', async () => {
      const fresh = await testConfig();
      const one = createDataSource(fresh.databaseUrl, { poolSize: 1 });
      try {
        await Promise.race([one.initialize(), new Promise((_, reject) => setTimeout(() => reject(new Error('initialize hung')), 30_000))]);
        const applied: { name: string }[] = await one.query('SELECT name FROM typeorm_migrations');
        expect(applied.map((r) => r.name)).toEqual(ALL_MIGRATIONS);
        expect(await one.runMigrationsLocked()).toEqual([]);
      } finally {
        if (one.isInitialized) await one.destroy();
        await cleanupTestConfig(fresh);
      }
    });

    it('run once when several processes boot at the same time', async () => {
      const fresh = await testConfig();
      const sources = [1, 2, 3, 4].map(() => createDataSource(fresh.databaseUrl, { poolSize: 2 }));
      try {
        await Promise.all(sources.map((s) => s.initialize()));
        const applied: { name: string }[] = await sources[0].query('SELECT name FROM typeorm_migrations');
        expect(applied.map((r) => r.name)).toEqual(ALL_MIGRATIONS);
      } finally {
        await Promise.all(sources.map((s) => (s.isInitialized ? s.destroy() : undefined)));
        await cleanupTestConfig(fresh);
      }
    });
  });

  describe('version allocation', () => {
    it('numbers concurrent pushes of one model without gaps or duplicates', async () => {
      const created = await Promise.all(Array.from({ length: 25 }, () => versions.createVersionWithBuild(push('race'))));
      expect(created.map((c) => c.version.version).sort((a, b) => a - b)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
      expect(new Set(created.map((c) => c.model.id)).size).toBe(1);
      const listed = await versions.listVersions('race');
      expect(listed.map((v) => v.version)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
      // A second wave continues where the first ended.
      const more = await Promise.all([1, 2, 3].map(() => versions.createVersionWithBuild(push('race'))));
      expect(more.map((c) => c.version.version).sort((a, b) => a - b)).toEqual([26, 27, 28]);
    });

    it('numbers each model on its own', async () => {
      const created = await Promise.all(
        Array.from({ length: 12 }, (_, i) => versions.createVersionWithBuild(push(i % 2 ? 'odd-model' : 'even-model'))),
      );
      for (const name of ['odd-model', 'even-model']) {
        const nums = created.filter((c) => c.model.name === name).map((c) => c.version.version);
        expect(nums.sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6]);
      }
    });

    it('does not make one model wait for another', async () => {
      await versions.createVersionWithBuild(push('locked-model'));
      const blocker = ds.createQueryRunner();
      await blocker.connect();
      await blocker.startTransaction();
      try {
        await blocker.query("SELECT id FROM models WHERE name = 'locked-model' FOR UPDATE");
        let lockedDone = false;
        const locked = versions.createVersionWithBuild(push('locked-model')).then((c) => {
          lockedDone = true;
          return c;
        });
        // Another model goes through while locked-model's row is held.
        const other = await versions.createVersionWithBuild(push('free-model'));
        expect(other.version.version).toBe(1);
        await new Promise((r) => setTimeout(r, 200));
        expect(lockedDone).toBe(false);
        await blocker.commitTransaction();
        expect((await locked).version.version).toBe(2);
      } finally {
        if (blocker.isTransactionActive) await blocker.rollbackTransaction();
        await blocker.release();
      }
    });

    it('creates the version, its build and one row per target in one go', async () => {
      const { model, version, build, targets } = await versions.createVersionWithBuild(push('shape', ['sm_90', 'sm_80', 'sm_90']));
      expect(version).toMatchObject({ modelId: model.id, status: 'building', buildId: build.id, modelSize: 1234, completedAt: null, error: null });
      expect(build).toMatchObject({ modelVersionId: version.id, status: 'queued', targets: ['sm_90', 'sm_80'] });
      expect(targets.map((t) => [t.target, t.status, t.attempts, t.progress])).toEqual([
        ['sm_90', 'queued', 0, 0],
        ['sm_80', 'queued', 0, 0],
      ]);
      expect(await versions.getVersion('shape', 1)).toMatchObject({ id: version.id, spec: spec('shape', ['sm_90', 'sm_80', 'sm_90']) });
      expect(await versions.getVersion('shape', 2)).toBeNull();
      expect(await versions.getVersionById(version.id)).toMatchObject({ version: 1 });
      expect(await versions.getVersionById('not-a-uuid')).toBeNull();
      const summary = (await new ModelRepository(ds).list()).find((m) => m.name === 'shape');
      expect(summary).toMatchObject({ versionCount: 1, latestVersion: 1 });
      expect(await new ModelRepository(ds).findByName('nope')).toBeNull();
    });

    it('rolls back everything when an insert fails', async () => {
      await expect(versions.createVersionWithBuild({ ...push('rollback'), modelSha256: 'XYZ' })).rejects.toBeInstanceOf(RegistryError);
      await expect(versions.createVersionWithBuild({ ...push('rollback'), modelKey: null as unknown as string })).rejects.toThrow();
      expect(await versions.listVersions('rollback')).toEqual([]);
      expect((await versions.createVersionWithBuild(push('rollback'))).version.version).toBe(1);
    });
  });

  describe('target state', () => {
    it('follows running → retrying → running → succeeded', async () => {
      const { build } = await versions.createVersionWithBuild(push('states', ['sm_86']));
      await builds.markTargetRunning(build.id, 'sm_86', 'w-1', 1);
      let b = await builds.get(build.id);
      expect(b?.status).toBe('running');
      expect(b?.startedAt).toBeInstanceOf(Date);
      expect(b?.targetStates[0]).toMatchObject({ status: 'running', attempts: 1, workerId: 'w-1', stage: 'starting' });
      await builds.updateTargetProgress(build.id, 'sm_86', 'fuse', 42.5);
      expect(await builds.getTarget(build.id, 'sm_86')).toMatchObject({ stage: 'fuse', progress: 42.5 });
      await builds.markTargetRetrying(build.id, 'sm_86', 'E_IO', 'S3 hiccup');
      expect(await builds.getTarget(build.id, 'sm_86')).toMatchObject({ status: 'queued', errorCode: 'E_IO', errorMessage: 'S3 hiccup' });
      // Progress for a target that is not running is dropped.
      await builds.updateTargetProgress(build.id, 'sm_86', 'late', 99);
      expect(await builds.getTarget(build.id, 'sm_86')).toMatchObject({ stage: 'waiting-retry' });
      await builds.markTargetRunning(build.id, 'sm_86', 'w-2', 2);
      await builds.markTargetSucceeded(build.id, 'sm_86');
      b = await builds.get(build.id);
      expect(b?.targetStates[0]).toMatchObject({ status: 'succeeded', attempts: 2, workerId: 'w-2', progress: 100, errorCode: null, errorMessage: null });
      expect(b?.targetStates[0].finishedAt).toBeInstanceOf(Date);
    });

    it('refuses unknown builds and targets', async () => {
      const { build } = await versions.createVersionWithBuild(push('unknown', ['sm_80']));
      await expect(builds.markTargetRunning(build.id, 'sm_90', 'w', 1)).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
      await expect(builds.markTargetFailed('00000000-0000-4000-8000-000000000000', 'sm_80', 'E_X', 'x')).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
      await expect(builds.markTargetSucceeded('nope', 'sm_80')).rejects.toBeInstanceOf(RegistryError);
      expect(await builds.get('nope')).toBeNull();
      expect(await builds.get('00000000-0000-4000-8000-000000000000')).toBeNull();
    });
  });

  describe('recordPlan', () => {
    it('records one row however often a job is retried', async () => {
      const { version } = await versions.createVersionWithBuild(push('plans', ['sm_80', 'sm_90']));
      const input = {
        modelVersionId: version.id,
        target: 'sm_80' as const,
        s3Key: `plans/${SHA_B}.plan`,
        sha256: SHA_B,
        size: 5_000_000_000,
        precision: 'fp16',
        tuned: false,
        optimizerVersion: '1.2.3',
        header: { formatVersion: 1, sm: 80 },
        verification: null,
        buildMs: 812,
      };
      const concurrent = await Promise.all([plans.recordPlan(input), plans.recordPlan(input), plans.recordPlan(input)]);
      expect(new Set(concurrent.map((p) => p.id)).size).toBe(1);
      expect(concurrent[0]).toMatchObject({ ...input, verification: null });
      // A retry that built other bytes (say, a newer optimizer) keeps the first plan.
      const retried = await plans.recordPlan({ ...input, sha256: SHA_C, s3Key: `plans/${SHA_C}.plan`, buildMs: 900 });
      expect(retried).toMatchObject({ id: concurrent[0].id, sha256: SHA_B, buildMs: 812 });
      await plans.recordPlan({ ...input, target: 'sm_90', sha256: SHA_C, s3Key: `plans/${SHA_C}.plan`, verification: { maxAbsError: 1e-5 } });
      const listed = await plans.listForVersion(version.id);
      expect(listed.map((p) => [p.target, p.sha256])).toEqual([
        ['sm_80', SHA_B],
        ['sm_90', SHA_C],
      ]);
      expect(listed[1].verification).toEqual({ maxAbsError: 1e-5 });
      expect(await plans.get(version.id, 'sm_86')).toBeNull();
      const rows: { n: number }[] = await ds.query('SELECT count(*)::int AS n FROM plans WHERE model_version_id = $1', [version.id]);
      expect(rows[0].n).toBe(2);
    });

    it('rejects malformed input', async () => {
      const { version } = await versions.createVersionWithBuild(push('bad-plans', ['sm_80']));
      const base = { modelVersionId: version.id, target: 'sm_80' as const, s3Key: 'k', sha256: SHA_B, size: 1, precision: 'fp32', tuned: false, optimizerVersion: '1', header: {} };
      await expect(plans.recordPlan({ ...base, sha256: 'abc' })).rejects.toMatchObject({ code: 'E_INVALID' });
      await expect(plans.recordPlan({ ...base, modelVersionId: 'v1' })).rejects.toMatchObject({ code: 'E_INVALID' });
      await expect(plans.recordPlan({ ...base, size: -1 })).rejects.toMatchObject({ code: 'E_INVALID' });
    });
  });

  describe('finalize', () => {
    async function buildWith(outcomes: Partial<Record<Target, 'ok' | 'fail' | 'open'>>) {
      const targets = Object.keys(outcomes) as Target[];
      const created = await versions.createVersionWithBuild(push('finalize', targets));
      for (const [target, outcome] of Object.entries(outcomes) as [Target, string][]) {
        await builds.markTargetRunning(created.build.id, target, 'w', 1);
        if (outcome === 'ok') await builds.markTargetSucceeded(created.build.id, target);
        if (outcome === 'fail') await builds.markTargetFailed(created.build.id, target, 'E_PARSE', 'bad graph');
      }
      return created;
    }

    it('completes a version whose targets all succeeded', async () => {
      const { build, version } = await buildWith({ sm_80: 'ok', sm_90: 'ok' });
      const result = await versions.finalize(build.id);
      expect(result).toEqual({ buildId: build.id, modelVersionId: version.id, buildStatus: 'succeeded', versionStatus: 'complete', succeeded: ['sm_80', 'sm_90'], failed: [], changed: true });
      const v = await versions.getVersionById(version.id);
      expect(v).toMatchObject({ status: 'complete', error: null });
      expect(v?.completedAt).toBeInstanceOf(Date);
      expect(await builds.get(build.id)).toMatchObject({ status: 'succeeded', error: null });
    });

    it('marks a version partial when some targets failed', async () => {
      const { build, version } = await buildWith({ sm_80: 'ok', sm_86: 'fail' });
      expect(await versions.finalize(build.id)).toMatchObject({ buildStatus: 'partial', versionStatus: 'partial', succeeded: ['sm_80'], failed: ['sm_86'] });
      expect(await versions.getVersionById(version.id)).toMatchObject({
        status: 'partial',
        error: { failedTargets: [{ target: 'sm_86', code: 'E_PARSE', message: 'bad graph' }] },
      });
      expect(await builds.get(build.id)).toMatchObject({ status: 'partial', error: 'sm_86: E_PARSE' });
    });

    it('fails a version when no target succeeded, counting unfinished targets as lost', async () => {
      const { build, version } = await buildWith({ sm_87: 'fail', sm_90: 'open' });
      expect(await versions.finalize(build.id)).toMatchObject({ buildStatus: 'failed', versionStatus: 'failed', succeeded: [], failed: ['sm_87', 'sm_90'] });
      expect(await builds.getTarget(build.id, 'sm_90')).toMatchObject({ status: 'failed', errorCode: ABANDONED_TARGET_CODE });
      expect(await versions.getVersionById(version.id)).toMatchObject({ status: 'failed' });
    });

    it('is idempotent', async () => {
      const { build, version } = await buildWith({ sm_80: 'ok', sm_86: 'fail' });
      const first = await versions.finalize(build.id);
      const before = await versions.getVersionById(version.id);
      const again = await Promise.all([versions.finalize(build.id), versions.finalize(build.id)]);
      for (const r of again) expect(r).toEqual({ ...first, changed: false });
      const after = await versions.getVersionById(version.id);
      expect(after?.completedAt).toEqual(before?.completedAt);
      expect((await builds.get(build.id))?.finishedAt).toEqual((await builds.get(build.id))?.finishedAt);
    });

    it('refuses an unknown build', async () => {
      await expect(versions.finalize('00000000-0000-4000-8000-000000000000')).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
      await expect(versions.finalize('x')).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
    });
  });
});
