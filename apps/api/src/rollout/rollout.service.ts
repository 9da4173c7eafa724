import { Inject, Injectable } from '@nestjs/common';
import { z } from 'zod';
import { CHANNEL_NAME_PATTERN, ModelRepository, RolloutRepository, type RolloutPolicyRecord, type RolloutRecord, type RolloutThresholds } from '../../../../libs/registry/index.js';
import { API_CONFIG, type ApiAppConfig } from '../api-config.token.js';
import type { RequestActor } from '../auth/request-actor.js';
import { parseInput } from '../dto/validate.js';
import { ApiError } from '../errors/api.error.js';
import { AuditService } from '../services/audit.service.js';
import type { RolloutEvaluation } from './rollout-evaluation.js';
import { DEFAULT_ROLLOUT_THRESHOLDS, policyBody } from './rollout-policy.js';
import { RolloutWatcherService } from './rollout-watcher.service.js';

export interface RolloutPolicyDto extends RolloutThresholds {
  /** The secret is never returned. */
  webhook: { url: string; secretSet: true } | null;
  updatedBy: string | null;
  updatedAt: string;
}

export interface RolloutDto {
  id: string;
  version: number;
  fromVersions: Record<string, number>;
  targets: string[];
  state: string;
  canary: { percent: number } | null;
  startedAt: string;
  watchUntil: string;
  windowRemainingSeconds: number;
  policy: RolloutRecord['policy'];
  /** Live figures against the thresholds while watching; the figures of the decision once decided. */
  evaluation: RolloutEvaluation | Record<string, unknown> | null;
  decidedAt: string | null;
  reason: string | null;
  createdBy: string;
}

const listQuery = z.object({ limit: z.coerce.number().int().min(1).max(100).default(20) });

function policyDto(p: RolloutPolicyRecord): RolloutPolicyDto {
  return {
    watchSeconds: p.watchSeconds,
    minRequests: p.minRequests,
    baselineSeconds: p.baselineSeconds,
    maxP99Regression: p.maxP99Regression,
    maxErrorRate: p.maxErrorRate,
    maxThroughputDrop: p.maxThroughputDrop,
    canaryPercent: p.canaryPercent,
    webhook: p.webhookUrl ? { url: p.webhookUrl, secretSet: true } : null,
    updatedBy: p.updatedBy,
    updatedAt: p.updatedAt.toISOString(),
  };
}

/** Rollout policies per channel and what the watcher sees of a channel's rollouts. */
@Injectable()
export class RolloutService {
  constructor(
    @Inject(API_CONFIG) private readonly config: ApiAppConfig,
    private readonly models: ModelRepository,
    private readonly rollouts: RolloutRepository,
    private readonly watcher: RolloutWatcherService,
    private readonly audit: AuditService,
  ) {}

  async getPolicy(model: string, channel: string): Promise<{ model: string; channel: string; policy: RolloutPolicyDto | null; defaults: typeof DEFAULT_ROLLOUT_THRESHOLDS }> {
    const channelId = await this.channelId(model, channel, false);
    const policy = channelId ? await this.rollouts.policy(channelId) : null;
    return { model, channel, policy: policy ? policyDto(policy) : null, defaults: DEFAULT_ROLLOUT_THRESHOLDS };
  }

  /** Replaces the policy (fields left out take their defaults). The channel is created when new. Applies to promotions from now on. */
  async putPolicy(model: string, channel: string, body: unknown, actor: RequestActor, requestId: string): Promise<{ model: string; channel: string; policy: RolloutPolicyDto }> {
    const input = parseInput(policyBody(this.config.webhooks.allowInsecureHttp), body);
    const channelId = (await this.channelId(model, channel, true))!;
    const { webhook, ...thresholds } = input;
    const saved = await this.rollouts.putPolicy(channelId, { ...thresholds, webhookUrl: webhook?.url ?? null, webhookSecret: webhook?.secret ?? null, updatedBy: actor.name });
    await this.audit.record(actor, requestId, 'channel.policy', `model ${model} channel ${channel}`, { ...thresholds, webhookUrl: webhook?.url ?? null });
    return { model, channel, policy: policyDto(saved) };
  }

  /** The channel's latest rollout (watching or decided), with figures against its thresholds. */
  async current(model: string, channel: string): Promise<{ model: string; channel: string; rollout: RolloutDto | null }> {
    const channelId = await this.channelId(model, channel, false);
    if (!channelId) throw ApiError.notFound(`model "${model}" has no channel "${channel}"`);
    const [latest] = await this.rollouts.list(channelId, 1);
    return { model, channel, rollout: latest ? await this.dto(latest) : null };
  }

  async list(model: string, channel: string, query: unknown): Promise<{ model: string; channel: string; rollouts: RolloutDto[] }> {
    const q = parseInput(listQuery, query, 'query');
    const channelId = await this.channelId(model, channel, false);
    if (!channelId) throw ApiError.notFound(`model "${model}" has no channel "${channel}"`);
    const rows = await this.rollouts.list(channelId, q.limit);
    return { model, channel, rollouts: await Promise.all(rows.map((r) => this.dto(r, false))) };
  }

  private async dto(r: RolloutRecord, live = true): Promise<RolloutDto> {
    const now = new Date();
    const evaluation = r.state === 'watching' ? (live ? await this.watcher.evaluate(r, now) : null) : r.decision;
    return {
      id: r.id,
      version: r.version,
      fromVersions: r.fromVersions as Record<string, number>,
      targets: r.targets,
      state: r.state,
      canary: r.canaryBp === null ? null : { percent: r.canaryBp / 100 },
      startedAt: r.startedAt.toISOString(),
      watchUntil: r.watchUntil.toISOString(),
      windowRemainingSeconds: r.state === 'watching' ? Math.max(0, Math.ceil((r.watchUntil.getTime() - now.getTime()) / 1000)) : 0,
      policy: r.policy,
      evaluation,
      decidedAt: r.decidedAt?.toISOString() ?? null,
      reason: r.reason,
      createdBy: r.createdBy,
    };
  }

  private async channelId(model: string, channel: string, create: boolean): Promise<string | null> {
    if (!CHANNEL_NAME_PATTERN.test(channel)) throw ApiError.invalidField('channel', `"${channel.slice(0, 64)}" is not a channel name: expected ${CHANNEL_NAME_PATTERN.source}`);
    const found = await this.models.findByName(model);
    if (!found) throw ApiError.notFound(`model "${model.slice(0, 200)}" not found`);
    return this.rollouts.channelId(found.id, channel, create);
  }
}
