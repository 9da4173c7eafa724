import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { Queue } from 'bullmq';
import type { Readable } from 'node:stream';
import {
  buildEventsChannel,
  buildLogKey,
  cancelChannel,
  cancelledKey,
  isTarget,
  targetJobId,
  targetQueueName,
  type BuildStateEvent,
  type Target,
  type TargetEvent,
} from '../../../../libs/contracts/index.js';
import { BuildControlRepository, isUuid, type BuildListFilter } from '../../../../libs/registry/index.js';
import { StorageError } from '../../../../libs/storage/index.js';
import { API_CONFIG, type ApiAppConfig } from '../api-config.token.js';
import type { BuildStatusDto } from '../dto/build.dto.js';
import { paths } from '../dto/links.js';
import { ApiError } from '../errors/api.error.js';
import { OperationsRedisRepository } from '../events/operations-redis.repository.js';
import { StorageRepository } from '../repositories/storage.repository.js';
import { BuildService } from '../services/build.service.js';

export const BUILD_FINISHED_CODE = 'E_BUILD_FINISHED';
/** Workers that missed the pub/sub message find the cancellation here for this long. */
const CANCELLED_KEY_TTL_S = 7 * 24 * 3600;
/** Job states in which a job can simply be removed: no worker holds it. */
const REMOVABLE_STATES = new Set(['waiting', 'wait', 'prioritized', 'delayed', 'waiting-children', 'paused']);

export interface CancelBuildResponse {
  buildId: string;
  status: string;
  /** Targets this request cancelled: removed from their queue, or aborted on their worker. */
  cancelledTargets: Target[];
  /** Among them, those a worker was running (interrupted within seconds). */
  interruptedTargets: Target[];
  /** Targets already storing their plan: they finish. */
  finishingTargets: Target[];
  build: BuildStatusDto;
}

export interface BuildListItemDto {
  buildId: string;
  model: string;
  version: number;
  status: string;
  targets: Target[];
  priority: string | number | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  links: { self: string; events: string };
}

/**
 * Cancellation (DELETE /v1/builds/:id), build logs and the build list. A cancel
 * is recorded in Postgres first (one transaction: the build, its open targets
 * and its version become cancelled), then waiting jobs leave their queues and
 * running ones are aborted on their worker (pub/sub + a key the workers poll).
 */
@Injectable()
export class BuildControlService implements OnApplicationShutdown {
  private readonly logger = new Logger('BuildControl');
  private readonly queues = new Map<Target, Queue>();

  constructor(
    @Inject(API_CONFIG) private readonly config: ApiAppConfig,
    private readonly control: BuildControlRepository,
    private readonly builds: BuildService,
    private readonly redis: OperationsRedisRepository,
    private readonly storage: StorageRepository,
  ) {}

  async cancel(buildId: string, reason: string, base: string): Promise<CancelBuildResponse> {
    if (!isUuid(buildId)) throw ApiError.invalidField('id', `build id must be a UUID, got "${String(buildId).slice(0, 100)}"`);
    const outcome = await this.control.cancel(buildId, reason);
    if (outcome.result === 'not-found') throw ApiError.notFound(`build ${buildId} not found`);
    if (outcome.result === 'finished') {
      throw new ApiError(409, `build ${buildId} already ended (${outcome.status}); only queued or running builds can be cancelled`, { code: BUILD_FINISHED_CODE });
    }
    const farm = this.redis.farm;
    try {
      await this.redis.redis.set(cancelledKey(farm, buildId), reason.slice(0, 500), 'EX', CANCELLED_KEY_TTL_S);
      await this.redis.publish(cancelChannel(farm), buildId);
    } catch (err) {
      // Recorded in Postgres already: workers see it when they check, at the latest before storing anything.
      this.logger.warn(`build ${buildId}: could not tell the workers about the cancellation: ${(err as Error).message}`);
    }
    for (const target of outcome.cancelledTargets) await this.removeWaitingJob(buildId, target);
    const at = new Date().toISOString();
    for (const target of outcome.cancelledTargets) {
      const event: TargetEvent = { type: 'target', kind: 'cancelled', buildId, target, status: 'cancelled', stage: 'cancelled', percent: 0, at };
      await this.redis.publish(buildEventsChannel(farm, buildId), event).catch(() => undefined);
    }
    const buildEvent: BuildStateEvent = { type: 'build', buildId, status: 'cancelled', at };
    await this.redis.publish(buildEventsChannel(farm, buildId), buildEvent).catch(() => undefined);
    this.logger.log(`build ${buildId} cancelled (${reason}): ${outcome.cancelledTargets.join(', ') || 'no open targets'}`);
    return {
      buildId,
      status: 'cancelled',
      cancelledTargets: outcome.cancelledTargets,
      interruptedTargets: outcome.runningTargets,
      finishingTargets: outcome.finishingTargets,
      build: await this.builds.get(buildId, base),
    };
  }

  /** The stored log of one target (every attempt); 404 when the target never ran. */
  async log(buildId: string, target: string): Promise<Readable> {
    if (!isUuid(buildId)) throw ApiError.invalidField('id', `build id must be a UUID, got "${String(buildId).slice(0, 100)}"`);
    if (!isTarget(target)) throw ApiError.invalidField('target', `unknown target "${String(target).slice(0, 40)}": expected an exact SM such as sm_90`);
    const build = await this.builds.get(buildId, '');
    if (!build.targets.some((t) => t.target === target)) throw ApiError.notFound(`build ${buildId} has no target ${target}`);
    try {
      return await this.storage.getObjectStream(buildLogKey(buildId, target));
    } catch (err) {
      if (err instanceof StorageError && err.code === 'E_NOT_FOUND') {
        const state = build.targets.find((t) => t.target === target);
        const why = state?.cacheHit ? 'it came from the build cache (no job ran)' : `no worker has run it yet (status ${state?.status})`;
        throw ApiError.notFound(`no log for ${target} of build ${buildId}: ${why}`);
      }
      throw err;
    }
  }

  async list(filter: BuildListFilter, base: string): Promise<{ builds: BuildListItemDto[] }> {
    const rows = await this.control.list(filter);
    return {
      builds: rows.map((r) => ({
        buildId: r.buildId,
        model: r.model,
        version: r.version,
        status: r.status,
        targets: r.targets,
        priority: r.priority,
        createdAt: r.createdAt.toISOString(),
        startedAt: r.startedAt?.toISOString() ?? null,
        finishedAt: r.finishedAt?.toISOString() ?? null,
        links: { self: base + paths.build(r.buildId), events: `${base + paths.build(r.buildId)}/events` },
      })),
    };
  }

  /** A job no worker holds is removed; a running one is left to its worker (aborted via the cancel channel). */
  private async removeWaitingJob(buildId: string, target: Target): Promise<void> {
    try {
      const job = await this.queue(target).getJob(targetJobId(buildId, target));
      if (!job) return;
      const state = await job.getState();
      if (REMOVABLE_STATES.has(state)) await job.remove();
    } catch (err) {
      // Locked by a worker in the meantime: the worker finds the build cancelled before it builds or stores anything.
      this.logger.warn(`build ${buildId}/${target}: queued job not removed: ${(err as Error).message}`);
    }
  }

  private queue(target: Target): Queue {
    let queue = this.queues.get(target);
    if (!queue) {
      queue = new Queue(targetQueueName(target, this.config.queuePrefix), { connection: this.redis.redis, prefix: this.config.bullPrefix });
      queue.on('error', () => undefined);
      this.queues.set(target, queue);
    }
    return queue;
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close().catch(() => undefined)));
  }
}
