import { Injectable } from '@nestjs/common';
import type { Target } from '../../../../libs/contracts/index.js';
import { RolloutRepository, type ChannelEvent, type LockedChannel, type RolloutRecord } from '../../../../libs/registry/index.js';
import type { RequestActor } from '../auth/request-actor.js';
import { ApiError } from '../errors/api.error.js';
import { DEFAULT_ROLLOUT_THRESHOLDS } from './rollout-policy.js';

export const ROLLED_BACK_CODE = 'E_ROLLED_BACK';

/** An automatic rollback's verdict, recorded on the rollout it ends. */
export interface AutoRollback {
  rolloutId: string;
  decision: Record<string, unknown>;
}

export interface RolloutSummary {
  id: string;
  version: number;
  state: string;
  targets: Target[];
  canaryPercent: number | null;
  watchUntil: string;
}

export function summarize(r: RolloutRecord): RolloutSummary {
  return { id: r.id, version: r.version, state: r.state, targets: r.targets, canaryPercent: r.canaryBp === null ? null : r.canaryBp / 100, watchUntil: r.watchUntil.toISOString() };
}

/**
 * What channel moves do to rollouts, inside the channel's locked transaction
 * (ChannelService calls these): a promotion of a version an automatic rollback
 * took off is refused unless forced; a promotion starts a watched rollout when
 * the channel has a policy or asks for a canary; a rollback ends the rollout.
 */
@Injectable()
export class RolloutHooks {
  constructor(private readonly rollouts: RolloutRepository) {}

  /**
   * Before moving pointers. Returns the canary share in basis points (null: a full
   * rollout). `moving` are the targets about to move, with the version they leave.
   */
  async beforePromote(
    ch: LockedChannel,
    input: { version: number; force: boolean; canary?: { percent?: number } },
    moving: { target: Target; fromVersion: number | null }[],
  ): Promise<number | null> {
    const em = ch.entityManager;
    const blocked = await this.rollouts.blocked(em, ch.channelId, input.version);
    if (blocked && moving.length) {
      if (!input.force) {
        throw new ApiError(
          409,
          `version ${input.version} was rolled back automatically on channel "${ch.name}" at ${blocked.at.toISOString()} (${blocked.reason}); promote it with force: true and a reason to ship it again`,
          { code: ROLLED_BACK_CODE },
        );
      }
      await this.rollouts.unblock(em, ch.channelId, input.version);
    }
    if (!input.canary) return null;
    const percent = input.canary.percent ?? (await this.rollouts.policy(ch.channelId, em))?.canaryPercent ?? null;
    if (percent === null) throw ApiError.invalidField('canary.percent', 'required: the channel policy sets no default canary percent');
    const fresh = moving.filter((m) => m.fromVersion === null).map((m) => m.target);
    if (fresh.length) {
      throw new ApiError(409, `a canary needs a version to keep serving the other devices: channel "${ch.name}" serves nothing yet on ${fresh.join(', ')}`, { code: 'E_CANARY' });
    }
    if (!moving.length) throw new ApiError(409, `version ${input.version} is already what channel "${ch.name}" serves: nothing to canary`, { code: 'E_CANARY' });
    return Math.round(percent * 100);
  }

  /** After the moves: a rollout to watch, when the channel has a policy or a canary was asked for. */
  async afterPromote(ch: LockedChannel, version: number, changes: ChannelEvent[], canaryBp: number | null, actor: RequestActor): Promise<RolloutRecord | null> {
    const em = ch.entityManager;
    if (!changes.length && canaryBp === null) {
      // Promoting the version a canary is serving, without a canary: it goes to every device now.
      const active = await this.rollouts.active(ch.channelId, em, true);
      if (active && active.version === version && active.canaryBp !== null) {
        const reason = `canary of ${active.canaryBp / 100}% promoted to every device by ${actor.name}`;
        await this.rollouts.finish(em, active.id, 'complete', { by: 'promotion', actor: actor.name }, reason);
        return { ...active, state: 'complete', reason };
      }
      return null;
    }
    const watched = changes.filter((c) => c.fromVersion !== null);
    const policy = await this.rollouts.policy(ch.channelId, em);
    if (!watched.length || (!policy && canaryBp === null)) {
      // Nothing to compare with (first promotion) or nobody asked: a rollout still watching
      // the channel no longer describes what it serves.
      if (changes.length) await this.supersede(ch, version);
      return null;
    }
    const thresholds = policy
      ? {
          watchSeconds: policy.watchSeconds,
          minRequests: policy.minRequests,
          baselineSeconds: policy.baselineSeconds,
          maxP99Regression: policy.maxP99Regression,
          maxErrorRate: policy.maxErrorRate,
          maxThroughputDrop: policy.maxThroughputDrop,
          canaryPercent: policy.canaryPercent,
        }
      : DEFAULT_ROLLOUT_THRESHOLDS;
    return this.rollouts.start(em, {
      channelId: ch.channelId,
      version,
      fromVersions: Object.fromEntries(watched.map((c) => [c.target, c.fromVersion!])),
      targets: watched.map((c) => c.target),
      canaryBp,
      policy: thresholds,
      createdBy: actor.name,
    });
  }

  /**
   * After a rollback's moves: the watching rollout whose version was taken off
   * ends rolled_back. An automatic one also blocks the version on this channel.
   */
  async afterRollback(ch: LockedChannel, changes: ChannelEvent[], actor: RequestActor, reason: string, auto?: AutoRollback): Promise<RolloutRecord | null> {
    const em = ch.entityManager;
    const active = await this.rollouts.active(ch.channelId, em, true);
    if (!active || !changes.some((c) => c.fromVersion === active.version && active.targets.includes(c.target))) return null;
    if (auto && auto.rolloutId === active.id) {
      await this.rollouts.finish(em, active.id, 'rolled_back', auto.decision, reason);
      await this.rollouts.block(em, ch.channelId, active.version, active.id, reason);
    } else {
      await this.rollouts.finish(em, active.id, 'rolled_back', { by: 'manual', actor: actor.name }, reason);
    }
    return { ...active, state: 'rolled_back', reason };
  }

  private async supersede(ch: LockedChannel, version: number): Promise<void> {
    const active = await this.rollouts.active(ch.channelId, ch.entityManager, true);
    if (active && active.version !== version) {
      await this.rollouts.finish(ch.entityManager, active.id, 'superseded', { by: 'promotion', version }, `superseded by the promotion of version ${version}`);
    }
  }
}
