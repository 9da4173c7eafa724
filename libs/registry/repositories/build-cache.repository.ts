import type { DataSource } from 'typeorm';
import type { Target } from '../../contracts/index.js';
import { PlanEntity } from '../entities/plan.entity.js';
import { isUuid } from '../registry-error.js';

export interface BuildCacheKey {
  modelSha256: string;
  /** planSpecHash(spec): what changes a plan's bytes, not the model name, labels or targets. */
  specHash: string;
  optimizerVersion: string;
}

/**
 * The build cache is the registry itself: a plan already built from the same
 * model bytes, the same plan-affecting spec and the same optimizer version for a
 * target is the plan a new build would produce. Content-addressed: nothing is copied.
 */
export class BuildCacheRepository {
  constructor(private readonly ds: DataSource) {}

  /** The oldest matching plan per target (any will do: identical inputs give identical plans). */
  async find(key: BuildCacheKey, targets: readonly Target[]): Promise<Map<Target, PlanEntity>> {
    if (!targets.length) return new Map();
    const rows: { id: string }[] = await this.ds.query(
      `SELECT DISTINCT ON (pl.target) pl.id
       FROM model_versions v JOIN plans pl ON pl.model_version_id = v.id
       WHERE v.model_sha256 = $1 AND v.spec_hash = $2 AND pl.optimizer_version = $3 AND pl.target = ANY($4::text[])
       ORDER BY pl.target, pl.created_at, pl.id`,
      [key.modelSha256, key.specHash, key.optimizerVersion, [...targets]],
    );
    if (!rows.length) return new Map();
    const plans = await this.ds.getRepository(PlanEntity).findBy(rows.map((r) => ({ id: r.id })));
    return new Map(plans.map((p) => [p.target, p]));
  }

  /**
   * Satisfies targets of a fresh build from cached plans, in one transaction: the
   * version gets plan rows pointing at the same S3 objects, the build targets are
   * succeeded with cache_hit (started = finished = now: no job ran).
   */
  async applyHits(buildId: string, modelVersionId: string, hits: readonly PlanEntity[]): Promise<void> {
    if (!hits.length) return;
    if (!isUuid(buildId) || !isUuid(modelVersionId)) throw new Error('applyHits: build and version ids must be UUIDs');
    await this.ds.transaction(async (em) => {
      for (const plan of hits) {
        await em.query(
          `INSERT INTO plans (model_version_id, target, s3_key, sha256, size, precision, tuned, optimizer_version, header, verification, profile, build_ms)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL)
           ON CONFLICT (model_version_id, target) DO NOTHING`,
          [
            modelVersionId,
            plan.target,
            plan.s3Key,
            plan.sha256,
            plan.size,
            plan.precision,
            plan.tuned,
            plan.optimizerVersion,
            JSON.stringify(plan.header),
            plan.verification === null ? null : JSON.stringify(plan.verification),
            plan.profile == null ? null : JSON.stringify(plan.profile),
          ],
        );
        await em.query(
          `UPDATE build_targets SET status = 'succeeded', cache_hit = true, progress = 100, stage = 'cache-hit',
             started_at = now(), finished_at = now(), error_code = NULL, error_message = NULL
           WHERE build_id = $1 AND target = $2`,
          [buildId, plan.target],
        );
      }
      await em.query(`UPDATE builds SET status = 'running', started_at = COALESCE(started_at, now()) WHERE id = $1 AND status = 'queued'`, [buildId]);
    });
  }
}
