import { Inject, Injectable } from '@nestjs/common';
import { z } from 'zod';
import { TARGETS, isTarget, type Target } from '../../../../libs/contracts/index.js';
import {
  CHANNEL_NAME_PATTERN,
  ChannelRepository,
  ModelRepository,
  type ChannelEvent,
  type ChannelPlan,
  type ChannelPointer,
  type LockedChannel,
  type VersionForChannel,
} from '../../../../libs/registry/index.js';
import { API_CONFIG, type ApiAppConfig } from '../api-config.token.js';
import type { RequestActor } from '../auth/request-actor.js';
import { paths } from '../dto/links.js';
import { parseInput } from '../dto/validate.js';
import { ApiError } from '../errors/api.error.js';
import { ResolveCacheRepository } from '../repositories/resolve-cache.repository.js';
import { AuditService } from './audit.service.js';
import { evaluateTarget, type TargetGateResult } from './promotion-gate.js';
import { RolloutHooks, summarize, type AutoRollback, type RolloutSummary } from '../rollout/rollout-hooks.service.js';
import { canaryPercent } from '../rollout/rollout-policy.js';

export const GATE_REFUSED_CODE = 'E_GATE';
export const NOT_COMPLETE_CODE = 'E_NOT_COMPLETE';

const target = z.string().refine(isTarget, { message: `expected one of ${TARGETS.join(', ')} (plans are per exact SM)` });
const reason = z.string().trim().min(1).max(2000);

const promoteBody = z
  .object({
    version: z.number().int().min(1),
    target: target.optional(),
    reason: reason.optional(),
    force: z.boolean().default(false),
    /** Serve the new version to this share of devices (by device id) while the rollout is watched. */
    canary: z.object({ percent: canaryPercent.optional() }).strict().optional(),
  })
  .strict();

const rollbackBody = z
  .object({
    reason: reason,
    toVersion: z.number().int().min(1).optional(),
    target: target.optional(),
  })
  .strict();

const historyQuery = z.object({
  target: target.optional(),
  limit: z.coerce.number().int().min(1).max(10_000).default(1000),
});

export interface PointerDto {
  target: Target;
  version: number;
  sha256: string;
  size: number;
  precision: string;
  optimizerVersion: string;
  updatedAt: string;
  links: { plan: string };
}

export interface ChannelEventDto {
  id: number;
  target: Target;
  action: 'promote' | 'rollback';
  /** Version served before (null for the first promotion of the target). */
  from: number | null;
  to: number;
  actor: string;
  actorKeyId: string | null;
  reason: string | null;
  forced: boolean;
  gate: Record<string, unknown> | null;
  at: string;
}

export interface ChannelDto {
  model: string;
  channel: string;
  createdAt: string;
  updatedAt: string;
  pointers: PointerDto[];
  history?: ChannelEventDto[];
}

export interface ChannelChangeResponse {
  model: string;
  channel: string;
  action: 'promote' | 'rollback';
  /** One entry per target that moved; targets already there are not repeated. */
  changes: ChannelEventDto[];
  unchanged: Target[];
  forced: boolean;
  gate: TargetGateResult[] | null;
  channelState: ChannelDto;
  /** The rollout this move started (promote) or ended (rollback), when the channel is watched. */
  rollout?: RolloutSummary | null;
}

/** What a rollback moves: every target, one, or (the rollout watcher) a list. */
export interface RollbackInput {
  reason: string;
  toVersion?: number;
  targets?: Target[];
}

function toEventDto(e: ChannelEvent): ChannelEventDto {
  return {
    id: e.id,
    target: e.target,
    action: e.action,
    from: e.fromVersion,
    to: e.toVersion,
    actor: e.actor,
    actorKeyId: e.actorKeyId,
    reason: e.reason,
    forced: e.forced,
    gate: e.gate,
    at: e.createdAt.toISOString(),
  };
}

function toPointerDto(model: string, p: ChannelPointer, base: string): PointerDto {
  return {
    target: p.target,
    version: p.version,
    sha256: p.sha256,
    size: p.size,
    precision: p.precision,
    optimizerVersion: p.optimizerVersion,
    updatedAt: p.updatedAt.toISOString(),
    links: { plan: base + paths.plan(model, p.version, p.target) },
  };
}

/** Plans a version must have for these targets; 409 naming what is missing. */
function requirePlans(model: string, version: VersionForChannel, targets: Target[]): Map<Target, ChannelPlan> {
  const plans = new Map(version.plans.map((p) => [p.target, p]));
  const missing = targets.filter((t) => !plans.has(t));
  if (missing.length) {
    throw new ApiError(
      409,
      `model "${model}" version ${version.version} is not complete for ${missing.join(', ')} (status ${version.status}; plans built: ${[...plans.keys()].join(', ') || 'none'})`,
      { code: NOT_COMPLETE_CODE },
    );
  }
  return plans;
}

/**
 * Release channels: promote a version (gated), roll back (to the previous
 * version or a named one), read pointers and history. Every move happens under
 * the channel's row lock and is recorded in the channel history and the audit log
 * in the same transaction.
 */
@Injectable()
export class ChannelService {
  constructor(
    @Inject(API_CONFIG) private readonly config: ApiAppConfig,
    private readonly models: ModelRepository,
    private readonly channels: ChannelRepository,
    private readonly audit: AuditService,
    private readonly rolloutHooks: RolloutHooks,
    private readonly resolveCache: ResolveCacheRepository,
  ) {}

  async promote(model: string, channel: string, body: unknown, actor: RequestActor, requestId: string, base: string): Promise<ChannelChangeResponse> {
    const input = parseInput(promoteBody, body);
    if (input.force && !input.reason) throw ApiError.invalidField('reason', 'required when force is true: say why the gate is overridden');
    const modelId = await this.requireModel(model, channel);
    const subject = `model ${model} channel ${channel}`;
    let refusal: { message: string; gate: TargetGateResult[] } | null = null;
    // finally(): once the move is committed this instance's next resolve sees it (the
    // database's NOTIFY may reach the resolve cache's listener after the response).
    const outcome = await this.channels.withLockedChannel(modelId, channel, { create: true }, async (ch) => {
      const version = await ch.version(input.version);
      if (!version) throw ApiError.notFound(`model "${model}" has no version ${input.version}`);
      const targets = input.target ? [input.target] : version.targets;
      if (!input.target && version.status !== 'complete') {
        throw new ApiError(409, `model "${model}" version ${version.version} is ${version.status}, not complete: promote it per target, or build it again`, {
          code: NOT_COMPLETE_CODE,
        });
      }
      const plans = requirePlans(model, version, targets);
      const current = new Map((await ch.pointers()).map((p) => [p.target, p]));
      const gate = targets.map((t) => evaluateTarget(plans.get(t)!, current.get(t) ?? null, this.config.promotionGate));
      const violations = gate.flatMap((g) => g.violations);
      if (violations.length && !input.force) {
        refusal = { message: violations.join('; '), gate };
        throw new ApiError(409, `promotion of version ${version.version} to "${channel}" refused by the gate: ${violations.join('; ')}`, { code: GATE_REFUSED_CODE });
      }
      const forced = violations.length > 0;
      const moving = gate.filter((g) => current.get(g.target)?.planId !== plans.get(g.target)!.planId).map((g) => ({ target: g.target, fromVersion: current.get(g.target)?.version ?? null }));
      const canaryBp = await this.rolloutHooks.beforePromote(ch, { version: version.version, force: input.force, canary: input.canary }, moving);
      const changes: ChannelEvent[] = [];
      const unchanged: Target[] = [];
      for (const g of gate) {
        const now = current.get(g.target);
        const plan = plans.get(g.target)!;
        if (now?.planId === plan.planId) {
          unchanged.push(g.target);
          continue;
        }
        changes.push(
          await ch.move(plan, {
            action: 'promote',
            fromVersion: now?.version ?? null,
            actorKeyId: actor.keyId,
            actor: actor.name,
            reason: input.reason ?? null,
            forced,
            gate: { passed: g.violations.length === 0, violations: g.violations, candidate: g.candidate, current: g.current },
          }),
        );
      }
      await this.audit.record(
        actor,
        requestId,
        'channel.promote',
        subject,
        {
          version: version.version,
          target: input.target ?? null,
          reason: input.reason ?? null,
          forced,
          violations,
          changes: changes.map((c) => ({ target: c.target, from: c.fromVersion, to: c.toVersion })),
          ...(canaryBp !== null ? { canaryPercent: canaryBp / 100 } : {}),
        },
        ch.entityManager,
      );
      const rollout = await this.rolloutHooks.afterPromote(ch, version.version, changes, canaryBp, actor);
      return { changes, unchanged, forced, gate, rollout };
    }).finally(() => this.resolveCache.invalidate()).catch(async (err: unknown) => {
      if (refusal) {
        // Refusals change nothing, but an attempt to ship a worse model is worth a trail.
        await this.audit.record(actor, requestId, 'channel.promote.refused', subject, {
          version: input.version,
          target: input.target ?? null,
          violations: refusal.message,
        });
      }
      throw err;
    });
    const { changes, unchanged, forced, gate, rollout } = outcome!;
    return {
      model,
      channel,
      action: 'promote',
      changes: changes.map(toEventDto),
      unchanged,
      forced,
      gate,
      channelState: await this.get(model, channel, { limit: '20' }, base),
      rollout: rollout ? summarize(rollout) : null,
    };
  }

  async rollback(model: string, channel: string, body: unknown, actor: RequestActor, requestId: string, base: string): Promise<ChannelChangeResponse> {
    const input = parseInput(rollbackBody, body);
    const modelId = await this.requireModel(model, channel);
    const outcome = await this.channels
      .withLockedChannel(modelId, channel, { create: false }, (ch) =>
        this.rollbackInLock(ch, model, { reason: input.reason, toVersion: input.toVersion, targets: input.target ? [input.target] : undefined }, actor, requestId),
      )
      .finally(() => this.resolveCache.invalidate());
    if (!outcome) throw ApiError.notFound(`model "${model}" has no channel "${channel}"`);
    return {
      model,
      channel,
      action: 'rollback',
      changes: outcome.changes.map(toEventDto),
      unchanged: outcome.unchanged,
      forced: false,
      gate: null,
      channelState: await this.get(model, channel, { limit: '20' }, base),
      rollout: outcome.rollout ? summarize(outcome.rollout) : null,
    };
  }

  /**
   * The rollback itself, for a caller holding the channel's lock: POST …/rollback
   * and the rollout watcher's automatic rollbacks take this same path (pointers,
   * history and audit in the caller's transaction). Without `targets`, every
   * target the channel serves; without `toVersion`, per target the version live
   * before the current one.
   */
  async rollbackInLock(ch: LockedChannel, model: string, input: RollbackInput, actor: RequestActor, requestId: string, auto?: AutoRollback) {
    const channel = ch.name;
    const pointers = await ch.pointers();
    const current = new Map(pointers.map((p) => [p.target, p]));
    const notServed = (input.targets ?? []).filter((t) => !current.has(t));
    if (notServed.length) {
      throw new ApiError(409, `channel "${channel}" of model "${model}" does not serve ${notServed.join(', ')} (it serves ${[...current.keys()].join(', ') || 'nothing yet'})`);
    }
    const targets = input.targets ?? [...current.keys()];
    if (!targets.length) throw new ApiError(409, `channel "${channel}" of model "${model}" serves nothing yet: nothing to roll back`);

    const versions = new Map<number, VersionForChannel | null>();
    const versionNumbered = async (n: number) => {
      if (!versions.has(n)) versions.set(n, await ch.version(n));
      return versions.get(n)!;
    };
    // Decide every target first: either the whole rollback applies or none of it.
    const moves: { plan: ChannelPlan; from: number }[] = [];
    const unchanged: Target[] = [];
    for (const t of targets) {
      const now = current.get(t)!;
      const to = input.toVersion ?? (await this.previousVersion(ch, t, now.version, model, channel));
      if (to === now.version) {
        unchanged.push(t);
        continue;
      }
      const version = await versionNumbered(to);
      if (!version) {
        if (input.toVersion) throw ApiError.notFound(`model "${model}" has no version ${to}`);
        throw new ApiError(409, `${t}: the previous version ${to} of channel "${channel}" no longer exists; roll back to a named version (toVersion)`);
      }
      const plan = requirePlans(model, version, [t]).get(t)!;
      moves.push({ plan, from: now.version });
    }
    const changes: ChannelEvent[] = [];
    for (const m of moves) {
      changes.push(
        await ch.move(m.plan, { action: 'rollback', fromVersion: m.from, actorKeyId: actor.keyId, actor: actor.name, reason: input.reason, forced: false, gate: null }),
      );
    }
    await this.audit.record(
      actor,
      requestId,
      'channel.rollback',
      `model ${model} channel ${channel}`,
      {
        target: input.targets?.length === 1 ? input.targets[0] : null,
        ...(input.targets && input.targets.length > 1 ? { targets: input.targets } : {}),
        toVersion: input.toVersion ?? null,
        reason: input.reason,
        changes: changes.map((c) => ({ target: c.target, from: c.fromVersion, to: c.toVersion })),
        ...(auto ? { rolloutId: auto.rolloutId, automatic: true } : {}),
      },
      ch.entityManager,
    );
    const rollout = await this.rolloutHooks.afterRollback(ch, changes, actor, input.reason, auto);
    return { changes, unchanged, rollout };
  }

  async list(model: string, base: string): Promise<{ model: string; channels: ChannelDto[] }> {
    const found = await this.models.findByName(model);
    if (!found) throw ApiError.notFound(`model "${model.slice(0, 200)}" not found`);
    const states = await this.channels.list(found.id);
    return {
      model,
      channels: states.map((s) => ({
        model,
        channel: s.name,
        createdAt: s.createdAt.toISOString(),
        updatedAt: s.updatedAt.toISOString(),
        pointers: s.pointers.map((p) => toPointerDto(model, p, base)),
      })),
    };
  }

  /** Pointers per target and history (oldest first; ?target= and ?limit= for the newest N). */
  async get(model: string, channel: string, query: unknown, base: string): Promise<ChannelDto> {
    const q = parseInput(historyQuery, query, 'query');
    const modelId = await this.requireModel(model, channel);
    const state = await this.channels.get(modelId, channel, { target: q.target, limit: q.limit });
    if (!state) throw ApiError.notFound(`model "${model}" has no channel "${channel}"`);
    return {
      model,
      channel,
      createdAt: state.createdAt.toISOString(),
      updatedAt: state.updatedAt.toISOString(),
      pointers: state.pointers.map((p) => toPointerDto(model, p, base)),
      history: state.history.map(toEventDto),
    };
  }

  private async previousVersion(ch: LockedChannel, target: Target, current: number, model: string, channel: string): Promise<number> {
    const previous = await ch.versionBefore(target, current);
    if (previous === null) {
      throw new ApiError(409, `${target}: channel "${channel}" of model "${model}" has no version before ${current} to roll back to; name one with toVersion`, {
        code: 'E_NO_PREVIOUS',
      });
    }
    return previous;
  }

  private async requireModel(model: string, channel: string): Promise<string> {
    if (!CHANNEL_NAME_PATTERN.test(channel)) {
      throw ApiError.invalidField('channel', `"${channel.slice(0, 64)}" is not a channel name: expected ${CHANNEL_NAME_PATTERN.source}`);
    }
    const found = await this.models.findByName(model);
    if (!found) throw ApiError.notFound(`model "${model.slice(0, 200)}" not found`);
    return found.id;
  }
}
