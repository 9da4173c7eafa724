import type { DataSource, EntityManager } from 'typeorm';
import type { Target } from '../../contracts/index.js';
import type { ResolvedPlan } from './channel.repository.js';

export const ROLLOUT_STATES = ['watching', 'complete', 'rolled_back', 'superseded'] as const;
export type RolloutState = (typeof ROLLOUT_STATES)[number];

/** What a channel's promotions are judged by. Thresholds left null are not checked. */
export interface RolloutThresholds {
  /** Seconds after a promotion during which the new version is watched. */
  watchSeconds: number;
  /** Requests the new version (and, for relative checks, the baseline) must have served before it is judged. */
  minRequests: number;
  /** Full rollouts: the previous version's figures are taken from this long before the promotion onwards. */
  baselineSeconds: number;
  /** p99 may grow by at most this fraction over the previous version's (0.2 = +20 %). */
  maxP99Regression: number | null;
  /** Absolute error rate (errors / requests) the new version may reach (0.01 = 1 %). */
  maxErrorRate: number | null;
  /** Requests per device-second may drop by at most this fraction (0.3 = -30 %). */
  maxThroughputDrop: number | null;
  /** Canary share (percent of devices) used when a promotion asks for a canary without a percent. */
  canaryPercent: number | null;
}

export interface RolloutPolicyRecord extends RolloutThresholds {
  channelId: string;
  webhookUrl: string | null;
  /** Signs notifications; never returned by the API. */
  webhookSecret: string | null;
  updatedBy: string | null;
  updatedAt: Date;
}

export interface RolloutRecord {
  id: string;
  channelId: string;
  version: number;
  /** Per target, the version served before the promotion (what a rollback returns to). */
  fromVersions: Partial<Record<Target, number>>;
  targets: Target[];
  /** Canary share in basis points (1-9999) of devices; null for a full rollout. */
  canaryBp: number | null;
  state: RolloutState;
  policy: RolloutThresholds;
  startedAt: Date;
  watchUntil: Date;
  decidedAt: Date | null;
  decision: Record<string, unknown> | null;
  reason: string | null;
  createdBy: string;
}

/** A watching rollout with the names the watcher needs to act on its channel. */
export interface WatchedRollout extends RolloutRecord {
  modelId: string;
  modelName: string;
  channelName: string;
}

/** The plan a channel serves for a target, and during a canary the plan of the version it replaces. */
export interface CanaryResolution {
  plan: ResolvedPlan;
  canary: { rolloutId: string; bp: number; previous: ResolvedPlan | null } | null;
}

interface RolloutRow {
  id: string;
  channel_id: string;
  version: number;
  from_versions: Partial<Record<Target, number>>;
  targets: Target[];
  canary_bp: number | null;
  state: RolloutState;
  policy: RolloutThresholds;
  started_at: Date;
  watch_until: Date;
  decided_at: Date | null;
  decision: Record<string, unknown> | null;
  reason: string | null;
  created_by: string;
  model_id?: string;
  model_name?: string;
  channel_name?: string;
}

function toRollout(r: RolloutRow): RolloutRecord {
  return {
    id: r.id,
    channelId: r.channel_id,
    version: r.version,
    fromVersions: r.from_versions,
    targets: r.targets,
    canaryBp: r.canary_bp,
    state: r.state,
    policy: r.policy,
    startedAt: r.started_at,
    watchUntil: r.watch_until,
    decidedAt: r.decided_at,
    decision: r.decision,
    reason: r.reason,
    createdBy: r.created_by,
  };
}

interface PolicyRow {
  channel_id: string;
  watch_seconds: number;
  min_requests: number;
  baseline_seconds: number;
  max_p99_regression: number | null;
  max_error_rate: number | null;
  max_throughput_drop: number | null;
  canary_percent: number | null;
  webhook_url: string | null;
  webhook_secret: string | null;
  updated_by: string | null;
  updated_at: Date;
}

function toPolicy(r: PolicyRow): RolloutPolicyRecord {
  return {
    channelId: r.channel_id,
    watchSeconds: r.watch_seconds,
    minRequests: r.min_requests,
    baselineSeconds: r.baseline_seconds,
    maxP99Regression: r.max_p99_regression,
    maxErrorRate: r.max_error_rate,
    maxThroughputDrop: r.max_throughput_drop,
    canaryPercent: r.canary_percent,
    webhookUrl: r.webhook_url,
    webhookSecret: r.webhook_secret,
    updatedBy: r.updated_by,
    updatedAt: r.updated_at,
  };
}

type Querier = DataSource | EntityManager;

/**
 * Rollout watch state: per-channel policies, one rollout per watched promotion
 * (at most one `watching` per channel, by a partial unique index) and the
 * versions automatic rollbacks took off a channel. Methods taking an
 * EntityManager run inside the channel's locked transaction (ChannelRepository).
 */
export class RolloutRepository {
  constructor(private readonly ds: DataSource) {}

  async policy(channelId: string, q: Querier = this.ds): Promise<RolloutPolicyRecord | null> {
    const rows: PolicyRow[] = await q.query(`SELECT * FROM rollout_policies WHERE channel_id = $1`, [channelId]);
    return rows.length ? toPolicy(rows[0]) : null;
  }

  /** The channel's id, creating the channel when `create` (a policy may be set before the first promotion). */
  async channelId(modelId: string, name: string, create: boolean): Promise<string | null> {
    if (create) await this.ds.query(`INSERT INTO channels (model_id, name) VALUES ($1, $2) ON CONFLICT (model_id, name) DO NOTHING`, [modelId, name]);
    const rows: { id: string }[] = await this.ds.query(`SELECT id FROM channels WHERE model_id = $1 AND name = $2`, [modelId, name]);
    return rows.length ? rows[0].id : null;
  }

  async putPolicy(channelId: string, p: RolloutThresholds & { webhookUrl: string | null; webhookSecret: string | null; updatedBy: string }): Promise<RolloutPolicyRecord> {
    const [row]: PolicyRow[] = await this.ds.query(
      `INSERT INTO rollout_policies AS p (channel_id, watch_seconds, min_requests, baseline_seconds, max_p99_regression, max_error_rate, max_throughput_drop,
         canary_percent, webhook_url, webhook_secret, updated_by)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
       ON CONFLICT (channel_id) DO UPDATE SET watch_seconds = EXCLUDED.watch_seconds, min_requests = EXCLUDED.min_requests,
         baseline_seconds = EXCLUDED.baseline_seconds, max_p99_regression = EXCLUDED.max_p99_regression, max_error_rate = EXCLUDED.max_error_rate,
         max_throughput_drop = EXCLUDED.max_throughput_drop, canary_percent = EXCLUDED.canary_percent, webhook_url = EXCLUDED.webhook_url,
         webhook_secret = EXCLUDED.webhook_secret, updated_by = EXCLUDED.updated_by, updated_at = now()
       RETURNING *`,
      [
        channelId,
        p.watchSeconds,
        p.minRequests,
        p.baselineSeconds,
        p.maxP99Regression,
        p.maxErrorRate,
        p.maxThroughputDrop,
        p.canaryPercent,
        p.webhookUrl,
        p.webhookSecret,
        p.updatedBy,
      ],
    );
    return toPolicy(row);
  }

  /** The channel's watching rollout; `lock` takes its row lock (callers already hold the channel's). */
  async active(channelId: string, q: Querier = this.ds, lock = false): Promise<RolloutRecord | null> {
    const rows: RolloutRow[] = await q.query(`SELECT * FROM rollouts WHERE channel_id = $1 AND state = 'watching'${lock ? ' FOR UPDATE' : ''}`, [channelId]);
    return rows.length ? toRollout(rows[0]) : null;
  }

  /** Newest first. */
  async list(channelId: string, limit: number): Promise<RolloutRecord[]> {
    const rows: RolloutRow[] = await this.ds.query(`SELECT * FROM rollouts WHERE channel_id = $1 ORDER BY started_at DESC, id LIMIT $2`, [channelId, limit]);
    return rows.map(toRollout);
  }

  /** A new watching rollout; one still watching on the channel is superseded first. */
  async start(
    em: EntityManager,
    r: { channelId: string; version: number; fromVersions: Partial<Record<Target, number>>; targets: Target[]; canaryBp: number | null; policy: RolloutThresholds; createdBy: string },
  ): Promise<RolloutRecord> {
    await em.query(
      `UPDATE rollouts SET state = 'superseded', decided_at = now(), reason = $2 WHERE channel_id = $1 AND state = 'watching'`,
      [r.channelId, `superseded by the promotion of version ${r.version}`],
    );
    const [row]: RolloutRow[] = await em.query(
      `INSERT INTO rollouts (channel_id, version, from_versions, targets, canary_bp, state, policy, watch_until, created_by)
       VALUES ($1, $2, $3, $4, $5, 'watching', $6, now() + make_interval(secs => $7), $8) RETURNING *`,
      [r.channelId, r.version, JSON.stringify(r.fromVersions), r.targets, r.canaryBp, JSON.stringify(r.policy), r.policy.watchSeconds, r.createdBy],
    );
    return toRollout(row);
  }

  /** Ends a watching rollout; false when it was not watching any more (someone else decided first). */
  async finish(em: EntityManager, id: string, state: Exclude<RolloutState, 'watching'>, decision: Record<string, unknown>, reason: string | null): Promise<boolean> {
    const rows: unknown[] = await em.query(
      `UPDATE rollouts SET state = $2, decision = $3, reason = $4, decided_at = now() WHERE id = $1 AND state = 'watching' RETURNING id`,
      [id, state, JSON.stringify(decision), reason],
    );
    return rows.length > 0;
  }

  /** Why `version` may not be promoted again on the channel (an automatic rollback took it off), or null. */
  async blocked(em: Querier, channelId: string, version: number): Promise<{ reason: string; rolloutId: string | null; at: Date } | null> {
    const rows: { reason: string; rollout_id: string | null; created_at: Date }[] = await em.query(
      `SELECT reason, rollout_id, created_at FROM rollout_blocked_versions WHERE channel_id = $1 AND version = $2`,
      [channelId, version],
    );
    return rows.length ? { reason: rows[0].reason, rolloutId: rows[0].rollout_id, at: rows[0].created_at } : null;
  }

  async block(em: EntityManager, channelId: string, version: number, rolloutId: string, reason: string): Promise<void> {
    await em.query(
      `INSERT INTO rollout_blocked_versions (channel_id, version, rollout_id, reason) VALUES ($1, $2, $3, $4)
       ON CONFLICT (channel_id, version) DO UPDATE SET rollout_id = EXCLUDED.rollout_id, reason = EXCLUDED.reason, created_at = now()`,
      [channelId, version, rolloutId, reason],
    );
  }

  /** A forced promotion lifts the block (an admin decided). */
  async unblock(em: EntityManager, channelId: string, version: number): Promise<void> {
    await em.query(`DELETE FROM rollout_blocked_versions WHERE channel_id = $1 AND version = $2`, [channelId, version]);
  }

  /** Every watching rollout, with its model and channel names. */
  async watching(): Promise<WatchedRollout[]> {
    const rows: RolloutRow[] = await this.ds.query(
      `SELECT r.*, m.id AS model_id, m.name AS model_name, c.name AS channel_name
       FROM rollouts r JOIN channels c ON c.id = r.channel_id JOIN models m ON m.id = c.model_id
       WHERE r.state = 'watching' ORDER BY r.started_at`,
    );
    return rows.map((r) => ({ ...toRollout(r), modelId: r.model_id!, modelName: r.model_name!, channelName: r.channel_name! }));
  }

  /**
   * What a device polls, canary aware, in one statement over unique indexes: the
   * pointer's plan and, while a canary rollout of that version watches the
   * channel, the plan of the version it replaces on this target.
   */
  async resolve(modelName: string, channel: string, target: Target): Promise<CanaryResolution | null> {
    const rows: {
      version: number;
      sha256: string;
      size: string;
      precision: string;
      optimizer_version: string;
      s3_key: string;
      rollout_id: string | null;
      canary_bp: number | null;
      prev_version: number | null;
      prev_sha256: string | null;
      prev_size: string | null;
      prev_precision: string | null;
      prev_optimizer_version: string | null;
      prev_s3_key: string | null;
    }[] = await this.ds.query(
      `SELECT v.version, pl.sha256, pl.size, pl.precision, pl.optimizer_version, pl.s3_key,
              r.id AS rollout_id, r.canary_bp,
              pv.version AS prev_version, ppl.sha256 AS prev_sha256, ppl.size AS prev_size, ppl.precision AS prev_precision,
              ppl.optimizer_version AS prev_optimizer_version, ppl.s3_key AS prev_s3_key
       FROM models m
       JOIN channels c ON c.model_id = m.id AND c.name = $2
       JOIN channel_pointers p ON p.channel_id = c.id AND p.target = $3
       JOIN plans pl ON pl.id = p.plan_id
       JOIN model_versions v ON v.id = p.model_version_id
       LEFT JOIN rollouts r ON r.channel_id = c.id AND r.state = 'watching' AND r.canary_bp IS NOT NULL AND r.version = v.version
       LEFT JOIN model_versions pv ON pv.model_id = m.id AND pv.version = (r.from_versions ->> $3)::int
       LEFT JOIN plans ppl ON ppl.model_version_id = pv.id AND ppl.target = $3
       WHERE m.name = $1`,
      [modelName, channel, target],
    );
    if (!rows.length) return null;
    const r = rows[0];
    const plan: ResolvedPlan = { version: r.version, target, sha256: r.sha256, size: Number(r.size), precision: r.precision, optimizerVersion: r.optimizer_version, s3Key: r.s3_key };
    if (!r.rollout_id || r.canary_bp === null) return { plan, canary: null };
    const previous: ResolvedPlan | null =
      r.prev_sha256 && r.prev_version !== null
        ? { version: r.prev_version, target, sha256: r.prev_sha256, size: Number(r.prev_size), precision: r.prev_precision!, optimizerVersion: r.prev_optimizer_version!, s3Key: r.prev_s3_key! }
        : null;
    return { plan, canary: { rolloutId: r.rollout_id, bp: r.canary_bp, previous } };
  }
}
