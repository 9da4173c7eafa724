import type { DataSource } from 'typeorm';
import type { Target } from '../../contracts/index.js';
import { isUuid } from '../registry-error.js';

/** Recorded on every target a cancellation stopped. */
export const CANCELLED_CODE = 'E_CANCELLED';

/**
 * Stage a worker claims right before it stores a plan: from then on the target
 * finishes (a cancellation leaves it alone), so no plan is half-stored.
 */
export const RECORDING_STAGE = 'recording';

export interface CancelOutcome {
  /** not-found: no such build; finished: it had already ended (nothing changed). */
  result: 'cancelled' | 'not-found' | 'finished';
  status: string;
  /** Targets stopped by this call, and those among them a worker was running. */
  cancelledTargets: Target[];
  runningTargets: Target[];
  /** Targets already storing their plan: they finish as succeeded. */
  finishingTargets: Target[];
}

export interface BuildSummaryRow {
  buildId: string;
  model: string;
  version: number;
  status: string;
  targets: Target[];
  priority: string | number | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

export interface BuildListFilter {
  /** open: not finished yet. */
  state?: 'open' | 'finished' | 'all';
  model?: string;
  limit?: number;
}

/**
 * Cancellation and listings over builds (apps/api DELETE /v1/builds/:id, the
 * dashboard, the CLI), plus the two checks a worker makes so a cancelled target
 * never stores anything: `isCancelled` and `claimCompletion`.
 */
export class BuildControlRepository {
  constructor(private readonly ds: DataSource) {}

  /**
   * One transaction (build row locked): every queued or running target not yet
   * storing its plan becomes cancelled, the build becomes cancelled, and the
   * version it was making too. Idempotent: a finished build is left as it is.
   */
  async cancel(buildId: string, reason: string): Promise<CancelOutcome> {
    const none: CancelOutcome = { result: 'not-found', status: 'unknown', cancelledTargets: [], runningTargets: [], finishingTargets: [] };
    if (!isUuid(buildId)) return none;
    return this.ds.transaction(async (em) => {
      const [build] = (await em.query(`SELECT id, status, finished_at, model_version_id FROM builds WHERE id = $1 FOR UPDATE`, [buildId])) as {
        id: string;
        status: string;
        finished_at: Date | null;
        model_version_id: string;
      }[];
      if (!build) return none;
      if (build.finished_at !== null) return { ...none, result: 'finished', status: build.status };
      const message = `cancelled: ${reason}`.slice(0, 4000);
      const stopped = (await em.query(
        `WITH open AS (
           SELECT id, status AS was FROM build_targets
           WHERE build_id = $1 AND status IN ('queued', 'running') AND coalesce(stage, '') NOT IN ($3, 'done')
           FOR UPDATE
         )
         UPDATE build_targets t SET status = 'cancelled', stage = 'cancelled', finished_at = now(), error_code = $2, error_message = $4
         FROM open WHERE t.id = open.id
         RETURNING t.target, open.was`,
        [buildId, CANCELLED_CODE, RECORDING_STAGE, message],
      )) as unknown;
      const rows = normalizeReturning<{ target: Target; was: string }>(stopped);
      const finishing = (await em.query(`SELECT target FROM build_targets WHERE build_id = $1 AND status = 'running' ORDER BY target`, [buildId])) as {
        target: Target;
      }[];
      await em.query(
        `UPDATE builds SET status = 'cancelled', started_at = coalesce(started_at, now()), finished_at = now(), error = $2 WHERE id = $1`,
        [buildId, message],
      );
      // Only the version's own build settles it (a rebuild may have moved it on).
      await em.query(
        `UPDATE model_versions SET status = 'cancelled', completed_at = now(), error = $3
         WHERE id = $1 AND build_id = $2`,
        [
          build.model_version_id,
          buildId,
          JSON.stringify({ cancelled: true, reason, failedTargets: rows.map((r) => ({ target: r.target, code: CANCELLED_CODE, message })) }),
        ],
      );
      return {
        result: 'cancelled',
        status: 'cancelled',
        cancelledTargets: rows.map((r) => r.target).sort(),
        runningTargets: rows.filter((r) => r.was === 'running').map((r) => r.target).sort(),
        finishingTargets: finishing.map((r) => r.target),
      };
    });
  }

  async isCancelled(buildId: string): Promise<boolean> {
    if (!isUuid(buildId)) return false;
    const [row] = (await this.ds.query(`SELECT status FROM builds WHERE id = $1`, [buildId])) as { status: string }[];
    return row?.status === 'cancelled';
  }

  /**
   * The worker is about to store the plan: true when the target is still running
   * (it will now finish whatever happens), false when it was cancelled.
   */
  async claimCompletion(buildId: string, target: Target): Promise<boolean> {
    const result = (await this.ds.query(
      `UPDATE build_targets SET stage = $3 WHERE build_id = $1 AND target = $2 AND status = 'running' RETURNING id`,
      [buildId, target, RECORDING_STAGE],
    )) as unknown;
    return normalizeReturning(result).length > 0;
  }

  /** A worker stopped a target of a cancelled build (or found it cancelled when it began). */
  async markTargetCancelled(buildId: string, target: Target): Promise<void> {
    await this.ds.query(
      `UPDATE build_targets SET status = 'cancelled', stage = 'cancelled', finished_at = coalesce(finished_at, now()),
         error_code = $3, error_message = coalesce(error_message, 'cancelled')
       WHERE build_id = $1 AND target = $2 AND status <> 'succeeded'`,
      [buildId, target, CANCELLED_CODE],
    );
  }

  /** Builds newest first, with their model name and version. */
  async list(filter: BuildListFilter = {}): Promise<BuildSummaryRow[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.state === 'open') where.push('b.finished_at IS NULL');
    if (filter.state === 'finished') where.push('b.finished_at IS NOT NULL');
    if (filter.model) {
      params.push(filter.model);
      where.push(`m.name = $${params.length}`);
    }
    params.push(Math.min(500, Math.max(1, filter.limit ?? 50)));
    const rows = (await this.ds.query(
      `SELECT b.id, m.name, v.version, b.status, b.targets, b.spec->'priority' AS priority, b.created_at, b.started_at, b.finished_at
       FROM builds b JOIN model_versions v ON v.id = b.model_version_id JOIN models m ON m.id = v.model_id
       ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY b.created_at DESC LIMIT $${params.length}`,
      params,
    )) as {
      id: string;
      name: string;
      version: number;
      status: string;
      targets: Target[];
      priority: string | number | null;
      created_at: Date;
      started_at: Date | null;
      finished_at: Date | null;
    }[];
    return rows.map((r) => ({
      buildId: r.id,
      model: r.name,
      version: r.version,
      status: r.status,
      targets: r.targets,
      priority: r.priority,
      createdAt: r.created_at,
      startedAt: r.started_at,
      finishedAt: r.finished_at,
    }));
  }

  /** For /metrics: targets served from the build cache, and all targets. */
  async cacheCounts(): Promise<{ hits: number; total: number }> {
    const [row] = (await this.ds.query(`SELECT count(*) FILTER (WHERE cache_hit)::int AS hits, count(*)::int AS total FROM build_targets`)) as {
      hits: number;
      total: number;
    }[];
    return row ?? { hits: 0, total: 0 };
  }

  /** For /metrics: targets that finally failed, by target and error code. */
  async failureCounts(): Promise<{ target: Target; code: string; count: number }[]> {
    return (await this.ds.query(
      `SELECT target, coalesce(error_code, 'E_UNKNOWN') AS code, count(*)::int AS count FROM build_targets
       WHERE status IN ('failed', 'cancelled') GROUP BY 1, 2 ORDER BY 1, 2`,
    )) as { target: Target; code: string; count: number }[];
  }
}

/** The pg driver answers UPDATE … RETURNING through TypeORM as [rows, count]. */
function normalizeReturning<T>(result: unknown): T[] {
  if (Array.isArray(result) && result.length === 2 && Array.isArray(result[0]) && typeof result[1] === 'number') return result[0] as T[];
  return Array.isArray(result) ? (result as T[]) : [];
}
