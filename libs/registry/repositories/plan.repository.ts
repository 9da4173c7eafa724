import type { DataSource } from 'typeorm';
import type { Target } from '../../contracts/index.js';
import { PlanEntity } from '../entities/plan.entity.js';
import { RegistryError, SHA256_HEX, isUuid } from '../registry-error.js';

export interface RecordPlanInput {
  modelVersionId: string;
  target: Target;
  s3Key: string;
  sha256: string;
  size: number;
  precision: string;
  tuned: boolean;
  optimizerVersion: string;
  header: Record<string, unknown>;
  verification?: Record<string, unknown> | null;
  buildMs?: number | null;
  /** Latency measured on a real GPU ({p50Ms, p99Ms, …}); the promotion gate compares p99Ms. */
  profile?: Record<string, unknown> | null;
}

export class PlanRepository {
  constructor(private readonly ds: DataSource) {}

  /**
   * Idempotent: a retried job records nothing new. The first row for
   * (version, target) wins and is what every call returns.
   */
  async recordPlan(input: RecordPlanInput): Promise<PlanEntity> {
    if (!isUuid(input.modelVersionId)) throw new RegistryError('E_INVALID', `not a version id: ${input.modelVersionId}`);
    if (!SHA256_HEX.test(input.sha256)) throw new RegistryError('E_INVALID', 'plan sha256 must be 64 lowercase hex digits');
    if (!Number.isSafeInteger(input.size) || input.size < 0) throw new RegistryError('E_INVALID', 'plan size must be a non-negative integer');
    await this.ds.query(
      `INSERT INTO plans (model_version_id, target, s3_key, sha256, size, precision, tuned, optimizer_version, header, verification, build_ms, profile)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
       ON CONFLICT (model_version_id, target) DO NOTHING`,
      [
        input.modelVersionId,
        input.target,
        input.s3Key,
        input.sha256,
        input.size,
        input.precision,
        input.tuned,
        input.optimizerVersion,
        JSON.stringify(input.header),
        input.verification == null ? null : JSON.stringify(input.verification),
        input.buildMs == null ? null : Math.round(input.buildMs),
        input.profile == null ? null : JSON.stringify(input.profile),
      ],
    );
    return this.ds.getRepository(PlanEntity).findOneByOrFail({ modelVersionId: input.modelVersionId, target: input.target });
  }

  listForVersion(modelVersionId: string): Promise<PlanEntity[]> {
    if (!isUuid(modelVersionId)) return Promise.resolve([]);
    return this.ds.getRepository(PlanEntity).find({ where: { modelVersionId }, order: { target: 'ASC' } });
  }

  get(modelVersionId: string, target: Target): Promise<PlanEntity | null> {
    if (!isUuid(modelVersionId)) return Promise.resolve(null);
    return this.ds.getRepository(PlanEntity).findOneBy({ modelVersionId, target });
  }
}
