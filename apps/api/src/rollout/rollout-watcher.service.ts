import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { DEFAULT_ROLLOUT_CONFIG, DEFAULT_TELEMETRY_CONFIG, type RolloutConfig } from '../../../../libs/config/index.js';
import { ChannelRepository, RolloutRepository, TelemetryRepository, type RolloutRecord, type WatchedRollout } from '../../../../libs/registry/index.js';
import { API_CONFIG, type ApiAppConfig } from '../api-config.token.js';
import type { RequestActor } from '../auth/request-actor.js';
import { ResolveCacheRepository } from '../repositories/resolve-cache.repository.js';
import { AuditService } from '../services/audit.service.js';
import { ChannelService } from '../services/channel.service.js';
import { cohortWindows, evaluateRollout, type RolloutEvaluation } from './rollout-evaluation.js';
import { RolloutMetrics } from './rollout-metrics.js';
import { RolloutNotifier } from './rollout-notifier.service.js';

/** Who automatic moves are recorded as (history, audit). */
export const ROLLOUT_WATCH_ACTOR: RequestActor = { keyId: null, name: 'rollout-watch', role: 'admin' };

export type WatchOutcome = 'rolled_back' | 'completed' | 'waiting' | 'lost_race';

/**
 * One loop per API instance: every ROLLOUT_WATCH_INTERVAL_MS it judges each
 * rollout still watching. A verdict is acted on under the channel's row lock,
 * after checking that the rollout is still the channel's watching one and that
 * its targets still serve the version under watch: with several instances (or a
 * manual move) racing, exactly one acts and the others find nothing to do. The
 * rollback goes through ChannelService.rollbackInLock, the path of a manual
 * rollback (history, audit), then blocks the version on the channel.
 */
@Injectable()
export class RolloutWatcherService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('RolloutWatch');
  private readonly config: RolloutConfig;
  private readonly bucketSeconds: number;
  private timer?: NodeJS.Timeout;
  private running: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    @Inject(API_CONFIG) config: ApiAppConfig,
    private readonly rollouts: RolloutRepository,
    private readonly telemetry: TelemetryRepository,
    private readonly channels: ChannelRepository,
    private readonly channelService: ChannelService,
    private readonly audit: AuditService,
    private readonly notifier: RolloutNotifier,
    private readonly metrics: RolloutMetrics,
    private readonly resolveCache: ResolveCacheRepository,
  ) {
    this.config = config.rollout ?? DEFAULT_ROLLOUT_CONFIG;
    this.bucketSeconds = (config.telemetry ?? DEFAULT_TELEMETRY_CONFIG).bucketSeconds;
  }

  onApplicationBootstrap(): void {
    if (this.config.watcherEnabled) this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.tick()
        .then(() => undefined)
        .catch((err: unknown) => this.logger.error(`watch tick failed: ${(err as Error).stack ?? String(err)}`))
        .finally(() => this.schedule());
    }, this.config.watchIntervalMs);
    this.timer.unref();
  }

  /** One pass over every watching rollout; one failing does not stop the others. */
  async tick(): Promise<Record<string, WatchOutcome>> {
    const outcomes: Record<string, WatchOutcome> = {};
    for (const r of await this.rollouts.watching()) {
      if (this.stopped) break;
      try {
        outcomes[r.id] = await this.judge(r);
      } catch (err) {
        this.logger.error(`rollout ${r.id} (${r.modelName}/${r.channelName} v${r.version}): ${(err as Error).stack ?? String(err)}`);
      }
    }
    return outcomes;
  }

  /** The figures and verdict of a rollout right now (also what GET …/rollout shows). */
  async evaluate(r: RolloutRecord, now = new Date()): Promise<RolloutEvaluation> {
    const { candidateSince, baselineSince } = cohortWindows(r, this.bucketSeconds);
    const series = [{ version: r.version, since: candidateSince }];
    for (const v of new Set(Object.values(r.fromVersions))) if (v !== undefined) series.push({ version: v, since: baselineSince });
    const rows = await this.telemetry.buckets(r.channelId, series);
    return evaluateRollout(r, rows, this.bucketSeconds, now);
  }

  private async judge(r: WatchedRollout): Promise<WatchOutcome> {
    const evaluation = await this.evaluate(r);
    const d = evaluation.decision;
    if (d.action === 'wait') return 'waiting';
    const decision = { action: d.action, ...(d.action === 'rollback' ? { check: d.check, scope: d.scope } : {}), evaluatedAt: evaluation.at, scopes: evaluation.scopes };
    const requestId = `rollout-${r.id}`;
    const subject = `model ${r.modelName} channel ${r.channelName}`;
    const acted = await this.channels.withLockedChannel(r.modelId, r.channelName, { create: false }, async (ch) => {
      const active = await this.rollouts.active(ch.channelId, ch.entityManager, true);
      if (!active || active.id !== r.id) return false;
      const pointers = new Map((await ch.pointers()).map((p) => [p.target, p.version]));
      if (r.targets.some((t) => pointers.get(t) !== r.version)) {
        // Someone moved a target by hand without going through the channel service hooks: nothing left to judge.
        await this.rollouts.finish(ch.entityManager, r.id, 'superseded', { by: 'pointer moved' }, 'a target no longer serves the version under watch');
        return false;
      }
      if (d.action === 'rollback') {
        await this.channelService.rollbackInLock(ch, r.modelName, { reason: d.reason, targets: r.targets }, ROLLOUT_WATCH_ACTOR, requestId, { rolloutId: r.id, decision });
        await this.audit.record(ROLLOUT_WATCH_ACTOR, requestId, 'rollout.rollback', subject, { rolloutId: r.id, version: r.version, check: d.check, scope: d.scope, reason: d.reason }, ch.entityManager);
      } else {
        await this.rollouts.finish(ch.entityManager, r.id, 'complete', decision, d.reason);
        await this.audit.record(ROLLOUT_WATCH_ACTOR, requestId, 'rollout.complete', subject, { rolloutId: r.id, version: r.version, canaryPercent: r.canaryBp === null ? null : r.canaryBp / 100, reason: d.reason }, ch.entityManager);
      }
      // The notice is written with the change (transactional outbox): it exists exactly when the change committed.
      const policy = await this.rollouts.policy(r.channelId, ch.entityManager);
      if (policy?.webhookUrl && policy.webhookSecret) {
        await this.notifier.enqueue(ch.entityManager, r.channelId, {
          event: d.action === 'rollback' ? 'rollout.rolled_back' : 'rollout.completed',
          model: r.modelName,
          channel: r.channelName,
          rolloutId: r.id,
          version: r.version,
          fromVersions: r.fromVersions,
          targets: r.targets,
          canaryPercent: r.canaryBp === null ? null : r.canaryBp / 100,
          reason: d.reason,
          ...(d.action === 'rollback' ? { check: d.check, scope: d.scope } : {}),
          figures: evaluation.scopes,
          at: new Date().toISOString(),
        });
      }
      return true;
    }).finally(() => this.resolveCache.invalidate()); // committed: this instance resolves the outcome at once
    if (!acted) return 'lost_race';
    this.logger.log(`${r.modelName}/${r.channelName} v${r.version}: ${d.action === 'rollback' ? 'rolled back' : 'rollout complete'} (${d.reason})`);
    if (d.action === 'rollback') this.metrics.autoRollbacks.inc({ model: r.modelName, channel: r.channelName, reason: d.check });
    this.notifier.kick();
    return d.action === 'rollback' ? 'rolled_back' : 'completed';
  }

  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    // A tick in progress finishes while Postgres is still open.
    await this.running;
  }
}
