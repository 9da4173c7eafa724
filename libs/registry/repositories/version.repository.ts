import { randomUUID } from 'node:crypto';
import type { DataSource, EntityManager } from 'typeorm';
import type { BuildSpec, Target } from '../../contracts/index.js';
import { BuildTargetEntity } from '../entities/build-target.entity.js';
import { BuildEntity, type BuildStatus } from '../entities/build.entity.js';
import { ModelVersionEntity, type VersionError, type VersionStatus } from '../entities/model-version.entity.js';
import { ModelEntity } from '../entities/model.entity.js';
import { RegistryError, SHA256_HEX, isUuid } from '../registry-error.js';

export interface CreateVersionInput {
  modelName: string;
  modelSha256: string;
  modelKey: string;
  modelSize: number;
  spec: BuildSpec;
  specHash: string;
  targets: Target[];
  /** Provenance (model_versions.source), written in the same transaction. */
  source?: Record<string, unknown>;
}

/** A push whose every target is satisfied by a cached plan (the same bytes, spec and optimizer built before). */
export interface CachedVersionInput extends Omit<CreateVersionInput, 'modelName' | 'targets'> {
  /** One cached plan per target; its columns are copied, its S3 object shared. */
  plans: PlanCopy[];
}

/** The plan columns a cache hit copies into the new version. */
export interface PlanCopy {
  target: Target;
  s3Key: string;
  sha256: string;
  size: number;
  precision: string;
  tuned: boolean;
  optimizerVersion: string;
  header: Record<string, unknown>;
  verification: Record<string, unknown> | null;
  profile: Record<string, unknown> | null;
}

export interface CreatedCachedVersion {
  versionId: string;
  version: number;
  buildId: string;
  targets: Target[];
}

export interface CreatedVersion {
  model: ModelEntity;
  version: ModelVersionEntity;
  build: BuildEntity;
  targets: BuildTargetEntity[];
}

export interface FinalizeResult {
  buildId: string;
  modelVersionId: string;
  buildStatus: BuildStatus;
  versionStatus: VersionStatus;
  succeeded: Target[];
  failed: Target[];
  /** false when the build had already been finalized (nothing changed). */
  changed: boolean;
}

/** Code recorded for a target whose job ended (stalled out, crashed) without writing its own result. */
export const ABANDONED_TARGET_CODE = 'E_ABANDONED';

export class VersionRepository {
  constructor(private readonly ds: DataSource) {}

  /**
   * Registers a push: one transaction takes the next number from the model row
   * (takeVersionNumbers) and inserts the version, its build and one row per target.
   * The row lock, held to commit, serializes pushes of one model (gap-free,
   * race-free numbers); pushes of different models lock different rows.
   */
  async createVersionWithBuild(input: CreateVersionInput): Promise<CreatedVersion> {
    if (!SHA256_HEX.test(input.modelSha256)) throw new RegistryError('E_INVALID', 'modelSha256 must be 64 lowercase hex digits');
    if (!Number.isSafeInteger(input.modelSize) || input.modelSize < 0) throw new RegistryError('E_INVALID', 'modelSize must be a non-negative integer');
    const targets = [...new Set(input.targets)];
    if (targets.length === 0) throw new RegistryError('E_INVALID', 'a build needs at least one target');

    return this.ds.transaction(async (em) => {
      const model = await this.takeVersionNumbers(em, input.modelName, 1);
      const next = model.lastVersion;
      const version = await em.save(
        em.create(ModelVersionEntity, {
          modelId: model.id,
          version: next,
          status: 'building',
          modelSha256: input.modelSha256,
          modelKey: input.modelKey,
          modelSize: input.modelSize,
          spec: input.spec,
          specHash: input.specHash,
          buildId: null,
          completedAt: null,
          error: null,
          ...(input.source && { source: input.source }),
        }),
      );
      const build = await em.save(
        em.create(BuildEntity, {
          modelVersionId: version.id,
          status: 'queued',
          spec: input.spec,
          targets,
          startedAt: null,
          finishedAt: null,
          error: null,
        }),
      );
      await em.update(ModelVersionEntity, { id: version.id }, { buildId: build.id });
      version.buildId = build.id;
      const targetRows = await em.save(
        targets.map((target) =>
          em.create(BuildTargetEntity, {
            buildId: build.id,
            target,
            status: 'queued',
            attempts: 0,
            progress: 0,
            stage: null,
            workerId: null,
            startedAt: null,
            finishedAt: null,
            errorCode: null,
            errorMessage: null,
          }),
        ),
      );
      return { model, version, build, targets: targetRows };
    });
  }

  /**
   * Registers several fully cached pushes of one model in one statement (a
   * group commit): numbers from the same model-row counter as
   * createVersionWithBuild, every version (complete), build (succeeded), build
   * target (cache hit) and plan row set-based. One round trip and one commit (so
   * one WAL flush) for the whole batch instead of several per push.
   * Results are in input order, with consecutive version numbers.
   */
  async createCachedVersions(modelName: string, inputs: readonly CachedVersionInput[]): Promise<CreatedCachedVersion[]> {
    if (!inputs.length) return [];
    const rows = inputs.map((input) => {
      if (!SHA256_HEX.test(input.modelSha256)) throw new RegistryError('E_INVALID', 'modelSha256 must be 64 lowercase hex digits');
      if (!Number.isSafeInteger(input.modelSize) || input.modelSize < 0) throw new RegistryError('E_INVALID', 'modelSize must be a non-negative integer');
      const targets = [...new Set(input.plans.map((p) => p.target))];
      if (targets.length === 0 || targets.length !== input.plans.length) throw new RegistryError('E_INVALID', 'a cached push needs exactly one plan per target');
      return { input, targets, versionId: randomUUID(), buildId: randomUUID() };
    });
    const versions = rows.map((r, i) => ({
      ord: i + 1,
      version_id: r.versionId,
      build_id: r.buildId,
      model_sha256: r.input.modelSha256,
      model_key: r.input.modelKey,
      model_size: r.input.modelSize,
      spec: r.input.spec,
      spec_hash: r.input.specHash,
      source: r.input.source ?? null,
      targets: r.targets,
    }));
    const plans = rows.flatMap((r) =>
      r.input.plans.map((p) => ({
        version_id: r.versionId,
        target: p.target,
        s3_key: p.s3Key,
        sha256: p.sha256,
        size: p.size,
        precision: p.precision,
        tuned: p.tuned,
        optimizer_version: p.optimizerVersion,
        header: p.header,
        verification: p.verification,
        profile: p.profile,
      })),
    );
    // One statement, so one round trip and one commit. The model upsert waits for the row lock
    // and then sees the previous push's counter; versions and builds point at each other, which
    // is fine because foreign keys are checked at the end of the statement.
    const [{ last }]: { last: number }[] = await this.ds.query(
      `WITH m AS (
         INSERT INTO models (name, last_version) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET last_version = models.last_version + $2
         RETURNING id, last_version
       ), v_in AS (
         SELECT x.*, (SELECT last_version FROM m) - $2 + x.ord AS version
         FROM jsonb_to_recordset($3::jsonb) AS x(ord int, version_id uuid, build_id uuid, model_sha256 text, model_key text,
           model_size bigint, spec jsonb, spec_hash text, source jsonb, targets text[])
       ), p_in AS (
         SELECT * FROM jsonb_to_recordset($4::jsonb) AS x(version_id uuid, target text, s3_key text, sha256 text, size bigint, precision text,
           tuned boolean, optimizer_version text, header jsonb, verification jsonb, profile jsonb)
       ), v AS (
         INSERT INTO model_versions (id, model_id, version, status, model_sha256, model_key, model_size, spec, spec_hash, build_id, completed_at, source)
         SELECT version_id, (SELECT id FROM m), version, 'complete', model_sha256, model_key, model_size, spec, spec_hash, build_id, now(), source FROM v_in
       ), b AS (
         INSERT INTO builds (id, model_version_id, status, spec, targets, started_at, finished_at)
         SELECT build_id, version_id, 'succeeded', spec, targets, now(), now() FROM v_in
       ), t AS (
         INSERT INTO build_targets (build_id, target, status, attempts, progress, stage, started_at, finished_at, cache_hit)
         SELECT v_in.build_id, tg, 'succeeded', 0, 100, 'cache-hit', now(), now(), true FROM v_in CROSS JOIN LATERAL unnest(v_in.targets) AS tg
       ), p AS (
         INSERT INTO plans (model_version_id, target, s3_key, sha256, size, precision, tuned, optimizer_version, header, verification, profile, build_ms)
         SELECT version_id, target, s3_key, sha256, size, precision, tuned, optimizer_version, header, verification, profile, NULL FROM p_in
       )
       SELECT last_version AS last FROM m`,
      [modelName, rows.length, JSON.stringify(versions), JSON.stringify(plans)],
    );
    const first = last - rows.length + 1;
    return rows.map((r, i) => ({ versionId: r.versionId, version: first + i, buildId: r.buildId, targets: r.targets }));
  }

  /**
   * Hands out the model's next `count` version numbers (creating the model on its
   * first push) and keeps its row locked until the caller's transaction ends:
   * `lastVersion` is the last number taken.
   */
  private async takeVersionNumbers(em: EntityManager, modelName: string, count: number): Promise<ModelEntity> {
    const [row]: { id: string; name: string; last_version: number; created_at: Date }[] = await em.query(
      `INSERT INTO models (name, last_version) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET last_version = models.last_version + $2
       RETURNING id, name, last_version, created_at`,
      [modelName, count],
    );
    return em.create(ModelEntity, { id: row.id, name: row.name, lastVersion: row.last_version, createdAt: row.created_at });
  }

  /** Versions of a model, oldest first; [] for an unknown model. */
  listVersions(modelName: string): Promise<ModelVersionEntity[]> {
    return this.ds
      .getRepository(ModelVersionEntity)
      .createQueryBuilder('v')
      .innerJoin(ModelEntity, 'm', 'm.id = v.model_id')
      .where('m.name = :modelName', { modelName })
      .orderBy('v.version', 'ASC')
      .getMany();
  }

  getVersion(modelName: string, version: number): Promise<ModelVersionEntity | null> {
    if (!Number.isSafeInteger(version) || version < 1) return Promise.resolve(null);
    return this.ds
      .getRepository(ModelVersionEntity)
      .createQueryBuilder('v')
      .innerJoin(ModelEntity, 'm', 'm.id = v.model_id')
      .where('m.name = :modelName AND v.version = :version', { modelName, version })
      .getOne();
  }

  getVersionById(id: string): Promise<ModelVersionEntity | null> {
    if (!isUuid(id)) return Promise.resolve(null);
    return this.ds.getRepository(ModelVersionEntity).findOneBy({ id });
  }

  /** The newest version of a model, optionally only among those with a given status (e.g. 'complete'). */
  latestVersion(modelName: string, status?: VersionStatus): Promise<ModelVersionEntity | null> {
    const qb = this.ds
      .getRepository(ModelVersionEntity)
      .createQueryBuilder('v')
      .innerJoin(ModelEntity, 'm', 'm.id = v.model_id')
      .where('m.name = :modelName', { modelName });
    if (status) qb.andWhere('v.status = :status', { status });
    return qb.orderBy('v.version', 'DESC').limit(1).getOne();
  }

  /**
   * Settles a build once all its target jobs have ended: every target succeeded →
   * succeeded/complete; some → partial/partial; none → failed/failed. Targets still
   * queued or running at this point lost their job (stalled out, crashed) and are
   * recorded failed. Idempotent: a finalized build is returned unchanged.
   */
  async finalize(buildId: string): Promise<FinalizeResult> {
    if (!isUuid(buildId)) throw new RegistryError('E_NOT_FOUND', `no build ${buildId}`);
    return this.ds.transaction(async (em) => {
      const build = await em
        .getRepository(BuildEntity)
        .createQueryBuilder('b')
        .setLock('pessimistic_write')
        .where('b.id = :buildId', { buildId })
        .getOne();
      if (!build) throw new RegistryError('E_NOT_FOUND', `no build ${buildId}`);
      const version = await em.getRepository(ModelVersionEntity).findOneByOrFail({ id: build.modelVersionId });

      if (build.finishedAt !== null) {
        const targets = await this.targetsOf(em, buildId);
        return this.result(build, version.status, targets, false);
      }

      await em
        .createQueryBuilder()
        .update(BuildTargetEntity)
        .set({
          status: 'failed',
          finishedAt: () => 'now()',
          errorCode: () => `COALESCE(error_code, '${ABANDONED_TARGET_CODE}')`,
          errorMessage: () => `COALESCE(error_message, 'the target job ended without recording a result')`,
        })
        .where('build_id = :buildId AND status IN (:...open)', { buildId, open: ['queued', 'running'] })
        .execute();
      const targets = await this.targetsOf(em, buildId);
      const failed = targets.filter((t) => t.status !== 'succeeded');
      const okCount = targets.length - failed.length;
      const buildStatus: BuildStatus = failed.length === 0 ? 'succeeded' : okCount > 0 ? 'partial' : 'failed';
      const versionStatus: VersionStatus = failed.length === 0 ? 'complete' : okCount > 0 ? 'partial' : 'failed';
      const versionError: VersionError | null = failed.length
        ? { failedTargets: failed.map((t) => ({ target: t.target, code: t.errorCode, message: t.errorMessage })) }
        : null;

      await em
        .createQueryBuilder()
        .update(BuildEntity)
        .set({
          status: buildStatus,
          startedAt: () => 'COALESCE(started_at, now())',
          finishedAt: () => 'now()',
          error: failed.length ? failed.map((t) => `${t.target}: ${t.errorCode ?? 'E_UNKNOWN'}`).join('; ') : null,
        })
        .where('id = :buildId', { buildId })
        .execute();
      // A later rebuild may point the version at another build; only the version's own build settles it.
      if (version.buildId === buildId) {
        await em
          .createQueryBuilder()
          .update(ModelVersionEntity)
          .set({ status: versionStatus, completedAt: () => 'now()', error: versionError })
          .where('id = :id', { id: version.id })
          .execute();
      }
      return this.result({ ...build, status: buildStatus }, version.buildId === buildId ? versionStatus : version.status, targets, true);
    });
  }

  private targetsOf(em: EntityManager, buildId: string): Promise<BuildTargetEntity[]> {
    return em.getRepository(BuildTargetEntity).find({ where: { buildId }, order: { target: 'ASC' } });
  }

  private result(build: BuildEntity, versionStatus: VersionStatus, targets: BuildTargetEntity[], changed: boolean): FinalizeResult {
    return {
      buildId: build.id,
      modelVersionId: build.modelVersionId,
      buildStatus: build.status,
      versionStatus,
      succeeded: targets.filter((t) => t.status === 'succeeded').map((t) => t.target),
      failed: targets.filter((t) => t.status !== 'succeeded').map((t) => t.target),
      changed,
    };
  }
}
