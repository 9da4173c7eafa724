import type { DataSource, EntityManager } from 'typeorm';
import type { Target } from '../../contracts/index.js';
import type { VersionStatus } from '../entities/model-version.entity.js';

/** Channel names end up in URLs and logs. */
export const CHANNEL_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/;

export type ChannelAction = 'promote' | 'rollback';

/** A plan as the channel logic sees it: enough to point at it and to gate on it. */
export interface ChannelPlan {
  planId: string;
  versionId: string;
  version: number;
  target: Target;
  sha256: string;
  size: number;
  precision: string;
  optimizerVersion: string;
  verification: Record<string, unknown> | null;
  profile: Record<string, unknown> | null;
}

export interface ChannelPointer extends ChannelPlan {
  updatedAt: Date;
}

export interface ChannelEvent {
  id: number;
  target: Target;
  action: ChannelAction;
  fromVersion: number | null;
  toVersion: number;
  actorKeyId: string | null;
  actor: string;
  reason: string | null;
  forced: boolean;
  gate: Record<string, unknown> | null;
  createdAt: Date;
}

export interface ChannelState {
  name: string;
  createdAt: Date;
  updatedAt: Date;
  pointers: ChannelPointer[];
}

export interface VersionForChannel {
  id: string;
  version: number;
  status: VersionStatus;
  targets: Target[];
  plans: ChannelPlan[];
}

export interface ResolvedPlan {
  version: number;
  target: Target;
  sha256: string;
  size: number;
  precision: string;
  optimizerVersion: string;
  s3Key: string;
}

const PLAN_COLUMNS = `pl.id AS plan_id, v.id AS version_id, v.version, pl.target, pl.sha256, pl.size, pl.precision,
  pl.optimizer_version, pl.verification, pl.profile`;

interface PlanRow {
  plan_id: string;
  version_id: string;
  version: number;
  target: Target;
  sha256: string;
  size: string;
  precision: string;
  optimizer_version: string;
  verification: Record<string, unknown> | null;
  profile: Record<string, unknown> | null;
  updated_at?: Date;
}

function toPlan(r: PlanRow): ChannelPlan {
  return {
    planId: r.plan_id,
    versionId: r.version_id,
    version: r.version,
    target: r.target,
    sha256: r.sha256,
    size: Number(r.size),
    precision: r.precision,
    optimizerVersion: r.optimizer_version,
    verification: r.verification,
    profile: r.profile,
  };
}

function toPointer(r: PlanRow): ChannelPointer {
  return { ...toPlan(r), updatedAt: r.updated_at! };
}

interface EventRow {
  id: string;
  target: Target;
  action: ChannelAction;
  from_version: number | null;
  to_version: number;
  actor_key_id: string | null;
  actor: string;
  reason: string | null;
  forced: boolean;
  gate: Record<string, unknown> | null;
  created_at: Date;
}

function toEvent(r: EventRow): ChannelEvent {
  return {
    id: Number(r.id),
    target: r.target,
    action: r.action,
    fromVersion: r.from_version,
    toVersion: r.to_version,
    actorKeyId: r.actor_key_id,
    actor: r.actor,
    reason: r.reason,
    forced: r.forced,
    gate: r.gate,
    createdAt: r.created_at,
  };
}

async function pointersOf(q: DataSource | EntityManager, channelId: string): Promise<ChannelPointer[]> {
  const rows: PlanRow[] = await q.query(
    `SELECT ${PLAN_COLUMNS}, p.updated_at
     FROM channel_pointers p JOIN plans pl ON pl.id = p.plan_id JOIN model_versions v ON v.id = p.model_version_id
     WHERE p.channel_id = $1 ORDER BY p.target`,
    [channelId],
  );
  return rows.map(toPointer);
}

/**
 * One channel, locked (SELECT … FOR UPDATE on its row) for the rest of the
 * transaction: promotes and rollbacks of a channel run one after the other, so
 * every event's `from` is the previous event's `to`.
 */
export class LockedChannel {
  constructor(
    private readonly em: EntityManager,
    readonly channelId: string,
    readonly modelId: string,
    readonly name: string,
  ) {}

  /** Read after the lock: under READ COMMITTED each statement sees every earlier committed move. */
  pointers(): Promise<ChannelPointer[]> {
    return pointersOf(this.em, this.channelId);
  }

  /** A version of this channel's model with the plans it has; null when there is no such version. */
  async version(version: number): Promise<VersionForChannel | null> {
    const rows: { id: string; version: number; status: VersionStatus; spec: { targets: Target[] } }[] = await this.em.query(
      `SELECT id, version, status, spec FROM model_versions WHERE model_id = $1 AND version = $2`,
      [this.modelId, version],
    );
    if (!rows.length) return null;
    const v = rows[0];
    const plans: PlanRow[] = await this.em.query(
      `SELECT ${PLAN_COLUMNS} FROM plans pl JOIN model_versions v ON v.id = pl.model_version_id WHERE pl.model_version_id = $1 ORDER BY pl.target`,
      [v.id],
    );
    return { id: v.id, version: v.version, status: v.status, targets: v.spec.targets, plans: plans.map(toPlan) };
  }

  /**
   * The version that was live on `target` before `current` was promoted there:
   * the `from` of the latest promotion to it. Repeated rollbacks walk further back.
   */
  async versionBefore(target: Target, current: number): Promise<number | null> {
    const rows: { from_version: number | null }[] = await this.em.query(
      `SELECT from_version FROM channel_events
       WHERE channel_id = $1 AND target = $2 AND action = 'promote' AND to_version = $3
       ORDER BY id DESC LIMIT 1`,
      [this.channelId, target, current],
    );
    return rows.length ? rows[0].from_version : null;
  }

  /** Points `target` at `plan` and appends the history entry; returns it. */
  async move(
    plan: ChannelPlan,
    event: { action: ChannelAction; fromVersion: number | null; actorKeyId: string | null; actor: string; reason: string | null; forced: boolean; gate: Record<string, unknown> | null },
  ): Promise<ChannelEvent> {
    await this.em.query(
      `INSERT INTO channel_pointers (channel_id, target, model_version_id, plan_id) VALUES ($1, $2, $3, $4)
       ON CONFLICT (channel_id, target) DO UPDATE SET model_version_id = EXCLUDED.model_version_id, plan_id = EXCLUDED.plan_id, updated_at = now()`,
      [this.channelId, plan.target, plan.versionId, plan.planId],
    );
    await this.em.query(`UPDATE channels SET updated_at = now() WHERE id = $1`, [this.channelId]);
    const [row]: EventRow[] = await this.em.query(
      `INSERT INTO channel_events (channel_id, target, action, from_version, to_version, actor_key_id, actor, reason, forced, gate)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING *`,
      [
        this.channelId,
        plan.target,
        event.action,
        event.fromVersion,
        plan.version,
        event.actorKeyId,
        event.actor,
        event.reason,
        event.forced,
        event.gate === null ? null : JSON.stringify(event.gate),
      ],
    );
    return toEvent(row);
  }

  get entityManager(): EntityManager {
    return this.em;
  }
}

/** Release channels: per model, a named pointer per target, and its full history. */
export class ChannelRepository {
  constructor(private readonly ds: DataSource) {}

  /**
   * Runs `fn` in one transaction holding the channel's row lock. With `create`
   * the channel is made on first use; without, a missing channel gives null.
   * Throwing from `fn` rolls everything back (pointers, history, audit).
   */
  async withLockedChannel<T>(modelId: string, name: string, opts: { create: boolean }, fn: (channel: LockedChannel) => Promise<T>): Promise<T | null> {
    return this.ds.transaction(async (em) => {
      if (opts.create) {
        await em.query(`INSERT INTO channels (model_id, name) VALUES ($1, $2) ON CONFLICT (model_id, name) DO NOTHING`, [modelId, name]);
      }
      const rows: { id: string }[] = await em.query(`SELECT id FROM channels WHERE model_id = $1 AND name = $2 FOR UPDATE`, [modelId, name]);
      if (!rows.length) return null;
      return fn(new LockedChannel(em, rows[0].id, modelId, name));
    });
  }

  async list(modelId: string): Promise<ChannelState[]> {
    const channels: { id: string; name: string; created_at: Date; updated_at: Date }[] = await this.ds.query(
      `SELECT id, name, created_at, updated_at FROM channels WHERE model_id = $1 ORDER BY name`,
      [modelId],
    );
    const states: ChannelState[] = [];
    for (const c of channels) {
      states.push({ name: c.name, createdAt: c.created_at, updatedAt: c.updated_at, pointers: await pointersOf(this.ds, c.id) });
    }
    return states;
  }

  /** A channel's pointers and history (oldest first, optionally one target); null when unknown. */
  async get(modelId: string, name: string, opts: { target?: Target; limit?: number } = {}): Promise<(ChannelState & { history: ChannelEvent[] }) | null> {
    const rows: { id: string; name: string; created_at: Date; updated_at: Date }[] = await this.ds.query(
      `SELECT id, name, created_at, updated_at FROM channels WHERE model_id = $1 AND name = $2`,
      [modelId, name],
    );
    if (!rows.length) return null;
    const c = rows[0];
    const params: unknown[] = [c.id];
    let filter = '';
    if (opts.target) {
      params.push(opts.target);
      filter = ` AND target = $2`;
    }
    params.push(Math.min(Math.max(opts.limit ?? 1000, 1), 10_000));
    // The newest `limit` entries, returned oldest first.
    const events: EventRow[] = await this.ds.query(
      `SELECT * FROM (SELECT * FROM channel_events WHERE channel_id = $1${filter} ORDER BY id DESC LIMIT $${params.length}) e ORDER BY id`,
      params,
    );
    return {
      name: c.name,
      createdAt: c.created_at,
      updatedAt: c.updated_at,
      pointers: await pointersOf(this.ds, c.id),
      history: events.map(toEvent),
    };
  }

  /**
   * What a device polls: the plan a channel serves for one target. One statement
   * over unique indexes (models.name, channels(model_id, name), channel_pointers pk).
   */
  async resolve(modelName: string, channel: string, target: Target): Promise<ResolvedPlan | null> {
    const rows: { version: number; target: Target; sha256: string; size: string; precision: string; optimizer_version: string; s3_key: string }[] =
      await this.ds.query(
        `SELECT v.version, pl.target, pl.sha256, pl.size, pl.precision, pl.optimizer_version, pl.s3_key
         FROM models m
         JOIN channels c ON c.model_id = m.id AND c.name = $2
         JOIN channel_pointers p ON p.channel_id = c.id AND p.target = $3
         JOIN plans pl ON pl.id = p.plan_id
         JOIN model_versions v ON v.id = p.model_version_id
         WHERE m.name = $1`,
        [modelName, channel, target],
      );
    if (!rows.length) return null;
    const r = rows[0];
    return { version: r.version, target: r.target, sha256: r.sha256, size: Number(r.size), precision: r.precision, optimizerVersion: r.optimizer_version, s3Key: r.s3_key };
  }

  /** Targets a channel serves (for "no plan fits" answers); null when the channel does not exist. */
  async servedTargets(modelName: string, channel: string): Promise<{ target: Target; version: number; optimizerVersion: string }[] | null> {
    const channels: { id: string }[] = await this.ds.query(
      `SELECT c.id FROM channels c JOIN models m ON m.id = c.model_id WHERE m.name = $1 AND c.name = $2`,
      [modelName, channel],
    );
    if (!channels.length) return null;
    const rows: { target: Target; version: number; optimizer_version: string }[] = await this.ds.query(
      `SELECT p.target, v.version, pl.optimizer_version FROM channel_pointers p
       JOIN model_versions v ON v.id = p.model_version_id JOIN plans pl ON pl.id = p.plan_id
       WHERE p.channel_id = $1 ORDER BY p.target`,
      [channels[0].id],
    );
    return rows.map((r) => ({ target: r.target, version: r.version, optimizerVersion: r.optimizer_version }));
  }

  /** Channels (and targets) pointing at a version: such a version cannot be deleted. */
  async pointingAt(versionId: string): Promise<{ channel: string; target: Target }[]> {
    return this.ds.query(
      `SELECT c.name AS channel, p.target FROM channel_pointers p JOIN channels c ON c.id = p.channel_id
       WHERE p.model_version_id = $1 ORDER BY c.name, p.target`,
      [versionId],
    );
  }
}
