import { Injectable } from '@nestjs/common';
import { Queue } from 'bullmq';
import {
  TARGETS,
  TARGET_INFO,
  WORKER_LOST_AFTER_MS,
  targetQueueName,
  workerKey,
  workersIndexKey,
  type Target,
  type WorkerInfo,
} from '../../../../libs/contracts/index.js';
import { OperationsRedisRepository } from '../events/operations-redis.repository.js';

export type WorkerState = 'alive' | 'lost' | 'stopped';

export interface WorkerDto {
  workerId: string;
  host: string;
  pid: number;
  state: WorkerState;
  /** The pool: targets this worker builds for. */
  targets: Target[];
  mode: 'cross' | 'gpu';
  /** The GPU's name, or "cross" for a cross-compiling worker. */
  gpu: string;
  sm: string | null;
  memoryMiB: number | null;
  driver: string | null;
  optimizerVersion: string;
  /** "<buildId>/<target>" of the jobs running now (empty when idle or not alive). */
  currentJobs: string[];
  startedAt: string;
  lastSeen: string;
  lastSeenSecondsAgo: number;
}

export interface QueueStateDto {
  waiting: number;
  active: number;
  delayed: number;
  failed: number;
  /** Age of the oldest job waiting for a worker; null when none waits. */
  oldestWaitingSeconds: number | null;
}

export interface PoolDto {
  target: Target;
  sm: number;
  family: string;
  hostArch: 'x64' | 'arm64';
  workers: { alive: number; busy: number; idle: number; lost: number };
  queue: QueueStateDto;
}

/**
 * The worker registry (heartbeats in Redis, apps/worker/src/heartbeat) and the
 * queue behind each pool. A worker whose last heartbeat is older than
 * WORKER_LOST_AFTER_MS is `lost`; one that shut down cleanly is `stopped`.
 */
@Injectable()
export class WorkerRegistryService {
  private readonly queues = new Map<Target, Queue>();

  constructor(private readonly ops: OperationsRedisRepository) {}

  async workers(): Promise<WorkerDto[]> {
    const redis = this.ops.redis;
    const ids = await redis.zrange(workersIndexKey(this.ops.farm), 0, -1);
    if (!ids.length) return [];
    const pipeline = redis.pipeline();
    for (const id of ids) pipeline.hgetall(workerKey(this.ops.farm, id));
    const results = (await pipeline.exec()) ?? [];
    const now = Date.now();
    const out: WorkerDto[] = [];
    for (const [err, value] of results) {
      const hash = value as Record<string, string> | null;
      if (err || !hash?.info) continue;
      let info: WorkerInfo;
      try {
        info = JSON.parse(hash.info) as WorkerInfo;
      } catch {
        continue;
      }
      const lastSeenMs = Number(hash.lastSeen) || Date.parse(info.lastSeen);
      const state: WorkerState = info.state === 'stopped' ? 'stopped' : now - lastSeenMs > WORKER_LOST_AFTER_MS ? 'lost' : 'alive';
      out.push({
        workerId: info.workerId,
        host: info.host,
        pid: info.pid,
        state,
        targets: info.targets,
        mode: info.mode,
        gpu: info.gpu?.name ?? 'cross',
        sm: info.gpu?.sm ?? null,
        memoryMiB: info.gpu?.memoryMiB ?? null,
        driver: info.gpu?.driver ?? null,
        optimizerVersion: info.optimizerVersion,
        currentJobs: state === 'alive' ? info.currentJobs : [],
        startedAt: info.startedAt,
        lastSeen: new Date(lastSeenMs).toISOString(),
        lastSeenSecondsAgo: Math.max(0, Math.round((now - lastSeenMs) / 100) / 10),
      });
    }
    return out.sort((a, b) => a.workerId.localeCompare(b.workerId));
  }

  async pools(): Promise<PoolDto[]> {
    const workers = await this.workers();
    return Promise.all(
      TARGETS.map(async (target) => {
        const serving = workers.filter((w) => w.targets.includes(target));
        const alive = serving.filter((w) => w.state === 'alive');
        const busy = alive.filter((w) => w.currentJobs.some((j) => j.endsWith(`/${target}`))).length;
        return {
          target,
          ...TARGET_INFO[target],
          workers: { alive: alive.length, busy, idle: alive.length - busy, lost: serving.filter((w) => w.state === 'lost').length },
          queue: await this.queueState(target),
        };
      }),
    );
  }

  async queueState(target: Target): Promise<QueueStateDto> {
    const queue = this.queue(target);
    const counts = await queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'failed');
    return {
      waiting: (counts.waiting ?? 0) + (counts.prioritized ?? 0),
      active: counts.active ?? 0,
      delayed: counts.delayed ?? 0,
      failed: counts.failed ?? 0,
      oldestWaitingSeconds: await this.oldestWaitingSeconds(target),
    };
  }

  /**
   * The wait list is FIFO (oldest at its tail); prioritized jobs are ordered by
   * priority, so the first 200 are looked at. Their `timestamp` is when queued.
   */
  private async oldestWaitingSeconds(target: Target): Promise<number | null> {
    const redis = this.ops.redis;
    const base = `${this.ops.farm.bullPrefix}:${targetQueueName(target, this.ops.farm.queuePrefix)}`;
    const [tail, prioritized] = await Promise.all([redis.lindex(`${base}:wait`, -1), redis.zrange(`${base}:prioritized`, 0, 199)]);
    const ids = [...(tail ? [tail] : []), ...prioritized];
    if (!ids.length) return null;
    const pipeline = redis.pipeline();
    for (const id of ids) pipeline.hget(`${base}:${id}`, 'timestamp');
    const stamps = ((await pipeline.exec()) ?? []).map(([, v]) => Number(v)).filter((v) => Number.isFinite(v) && v > 0);
    if (!stamps.length) return null;
    return Math.max(0, (Date.now() - Math.min(...stamps)) / 1000);
  }

  private queue(target: Target): Queue {
    let queue = this.queues.get(target);
    if (!queue) {
      queue = new Queue(targetQueueName(target, this.ops.farm.queuePrefix), { connection: this.ops.redis, prefix: this.ops.farm.bullPrefix });
      queue.on('error', () => undefined);
      this.queues.set(target, queue);
    }
    return queue;
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close().catch(() => undefined)));
  }
}
