import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { FlowProducer } from 'bullmq';
import { Redis } from 'ioredis';
import {
  JOB_NAMES,
  finalizeJobOptions,
  finalizeQueueName,
  jobPriority,
  targetJobOptions,
  targetQueueName,
  type FinalizeJobData,
  type TargetJobData,
} from '../../../../libs/contracts/index.js';
import { API_CONFIG, type ApiAppConfig } from '../api-config.token.js';

export interface BuildFlow {
  finalize: FinalizeJobData;
  /** One child job per target; all share the build. */
  targets: TargetJobData[];
}

/** How long a submission waits for a Redis connection that is not up. */
const CONNECT_WAIT_MS = 5_000;
const ADD_FLOW_TIMEOUT_MS = 15_000;

/** Resolves with the value, or rejects once `ms` have passed. */
function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * The API's side of BullMQ: it only produces flows (a finalize parent over one
 * child per target); the workers consume them.
 */
@Injectable()
export class QueueRepository implements OnApplicationShutdown {
  private readonly redis: Redis;
  private readonly flows: FlowProducer;
  private closing?: Promise<void>;

  constructor(@Inject(API_CONFIG) private readonly config: ApiAppConfig) {
    // A producer must fail a request rather than queue commands forever while Redis is away.
    this.redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 2, connectTimeout: 5_000 });
    // ioredis reports connection trouble as 'error' events; requests see them as rejections.
    this.redis.on('error', () => undefined);
    this.flows = new FlowProducer({ connection: this.redis, prefix: config.bullPrefix });
    this.flows.on('error', () => undefined);
  }

  /**
   * Adds the whole flow atomically: either every job exists afterwards or none does.
   * BullMQ waits for a connection forever; a request cannot, so an unreachable
   * Redis fails the call before anything is sent (no late, orphaned flow).
   */
  async addBuildFlow(flow: BuildFlow): Promise<void> {
    const { buildId } = flow.finalize;
    const prefix = this.config.queuePrefix;
    if (this.closing) throw new Error('the queue connection is closed');
    await withTimeout(this.flows.waitUntilReady(), CONNECT_WAIT_MS, `connecting to Redis (status ${this.redis.status})`);
    await withTimeout(
      this.flows.add({
        name: JOB_NAMES.finalizeBuild,
        queueName: finalizeQueueName(prefix),
        data: flow.finalize,
        opts: finalizeJobOptions(buildId),
        children: flow.targets.map((data) => ({
          name: JOB_NAMES.buildTarget,
          queueName: targetQueueName(data.target, prefix),
          data,
          // Release builds before branch builds (spec.priority; BullMQ runs lower numbers first).
          opts: { ...targetJobOptions(buildId, data.target), priority: jobPriority(data.spec.priority) },
        })),
      }),
      ADD_FLOW_TIMEOUT_MS,
      'adding the build flow to Redis',
    );
  }

  async ping(timeoutMs = 2_000): Promise<void> {
    const reply = await withTimeout(this.redis.ping(), timeoutMs, 'Redis PING');
    if (reply !== 'PONG') throw new Error(`unexpected PING reply: ${reply}`);
  }

  /** Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.flows.close().catch(() => undefined);
      // Passed in, so the FlowProducer leaves it open: ours to close.
      await this.redis.quit().catch(() => this.redis.disconnect());
    })();
    return this.closing;
  }

  onApplicationShutdown(): Promise<void> {
    return this.close();
  }
}
