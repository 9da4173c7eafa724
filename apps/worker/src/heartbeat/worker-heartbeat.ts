import os from 'node:os';
import type { Redis } from 'ioredis';
import {
  WORKER_HEARTBEAT_MS,
  workerKey,
  workersIndexKey,
  type FarmNames,
  type Target,
  type WorkerInfo,
} from '../../../../libs/contracts/index.js';
import type { Logger } from '../worker-logger.js';

/** A stopped or lost worker stays listed this long, then its hash expires. */
const FORGET_AFTER_S = 24 * 3600;

export interface WorkerHeartbeatOptions {
  farm: FarmNames;
  workerId: string;
  targets: Target[];
  mode: 'cross' | 'gpu';
  gpu: WorkerInfo['gpu'];
  optimizerVersion: string;
  /** Jobs running now, asked at each beat. */
  currentJobs: () => string[];
  intervalMs?: number;
}

/**
 * Registers the worker in Redis and refreshes it every few seconds: a hash with
 * what the worker is (host, GPU, pool, optimizer) and is doing (current jobs),
 * plus its score in an index sorted by last beat. Readers call a worker whose
 * last beat is older than WORKER_LOST_AFTER_MS lost. A clean stop says so.
 */
export class WorkerHeartbeat {
  private timer?: NodeJS.Timeout;
  private readonly startedAt = new Date().toISOString();
  private stopped = false;

  constructor(
    private readonly redis: Redis,
    private readonly opts: WorkerHeartbeatOptions,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    await this.beat('running');
    this.timer = setInterval(() => {
      this.beat('running').catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'heartbeat failed'));
    }, this.opts.intervalMs ?? WORKER_HEARTBEAT_MS);
    this.timer.unref();
  }

  /** Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    await this.beat('stopped').catch(() => undefined);
  }

  private async beat(state: WorkerInfo['state']): Promise<void> {
    const now = Date.now();
    const o = this.opts;
    const info: WorkerInfo = {
      workerId: o.workerId,
      host: os.hostname(),
      pid: process.pid,
      targets: o.targets,
      mode: o.mode,
      gpu: o.gpu,
      optimizerVersion: o.optimizerVersion,
      currentJobs: o.currentJobs(),
      startedAt: this.startedAt,
      lastSeen: new Date(now).toISOString(),
      state,
    };
    const key = workerKey(o.farm, o.workerId);
    await this.redis
      .multi()
      .hset(key, { info: JSON.stringify(info), lastSeen: String(now) })
      .expire(key, FORGET_AFTER_S)
      .zadd(workersIndexKey(o.farm), now, o.workerId)
      // Index entries of workers whose hash expired long ago.
      .zremrangebyscore(workersIndexKey(o.farm), '-inf', now - FORGET_AFTER_S * 1000)
      .exec();
  }
}
