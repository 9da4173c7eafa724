import { Injectable } from '@nestjs/common';
import type { Target } from '../../../../libs/contracts/index.js';
import { BuildCacheRepository, type BuildCacheKey, type PlanEntity } from '../../../../libs/registry/index.js';
import { StorageRepository } from './storage.repository.js';

/**
 * How long a found plan (and the fact that its S3 object exists) is trusted
 * without asking again. Plans are immutable and their objects content-addressed,
 * so a hit stays true unless an admin deletes every version holding the plan and
 * the orphan sweeper then removes the object; this bounds that window.
 */
const TRUST_MS = 5_000;
const MAX_ENTRIES = 10_000;

/**
 * Build-cache lookups for submissions: BuildCacheRepository plus an S3 existence
 * check (a plan row whose object is gone is no hit), remembered briefly so that a
 * burst of identical pushes costs one query and one HEAD, not one per push.
 * Only hits are remembered: a miss turns into a hit as soon as a worker records it.
 */
@Injectable()
export class BuildCacheLookupRepository {
  private readonly plans = new Map<string, { at: number; plans: Map<Target, PlanEntity> }>();
  private readonly present = new Map<string, number>();

  constructor(
    private readonly cache: BuildCacheRepository,
    private readonly storage: StorageRepository,
  ) {}

  /** Cached plans for the targets whose object is still in the bucket. */
  async find(key: BuildCacheKey, targets: readonly Target[]): Promise<Map<Target, PlanEntity>> {
    const now = Date.now();
    const id = `${key.modelSha256}\n${key.specHash}\n${key.optimizerVersion}`;
    let known = this.plans.get(id);
    if (!known || now - known.at >= TRUST_MS || targets.some((t) => !known!.plans.has(t))) {
      const found = await this.cache.find(key, targets);
      known = { at: now, plans: found };
      if (found.size) this.remember(this.plans, id, known);
    }
    const hits = new Map<Target, PlanEntity>();
    await Promise.all(
      targets.map(async (target) => {
        const plan = known!.plans.get(target);
        if (plan && (await this.objectExists(plan.s3Key))) hits.set(target, plan);
      }),
    );
    return hits;
  }

  private async objectExists(s3Key: string): Promise<boolean> {
    const at = this.present.get(s3Key);
    if (at !== undefined && Date.now() - at < TRUST_MS) return true;
    const exists = await this.storage.exists(s3Key).catch(() => false);
    if (exists) this.remember(this.present, s3Key, Date.now());
    else this.present.delete(s3Key);
    return exists;
  }

  private remember<V>(map: Map<string, V>, key: string, value: V): void {
    if (map.size >= MAX_ENTRIES && !map.has(key)) map.clear();
    map.set(key, value);
  }
}
