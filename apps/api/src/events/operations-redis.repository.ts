import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { Redis } from 'ioredis';
import type { FarmNames } from '../../../../libs/contracts/index.js';
import { API_CONFIG, type ApiAppConfig } from '../api-config.token.js';

export type MessageListener = (message: string) => void;

/**
 * The API's Redis for operations (outside BullMQ): commands (publish, rate
 * limits, worker registry, metrics) on one connection, pub/sub subscriptions
 * on another, shared by every SSE stream of this process (one SUBSCRIBE per
 * channel, however many listeners).
 */
@Injectable()
export class OperationsRedisRepository implements OnApplicationShutdown {
  readonly redis: Redis;
  readonly farm: FarmNames;
  private subscriber?: Redis;
  private readonly listeners = new Map<string, Set<MessageListener>>();
  private readonly logger = new Logger('OperationsRedis');
  private closing?: Promise<void>;

  constructor(@Inject(API_CONFIG) config: ApiAppConfig) {
    this.farm = { bullPrefix: config.bullPrefix, queuePrefix: config.queuePrefix };
    // Requests must fail rather than wait forever while Redis is away.
    this.redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 2, connectTimeout: 5_000, lazyConnect: true });
    this.redis.on('error', () => undefined);
  }

  /** Listens to a channel until the returned function is called. */
  async subscribe(channel: string, listener: MessageListener): Promise<() => void> {
    if (this.closing) throw new Error('the operations Redis connection is closed');
    const subscriber = this.ensureSubscriber();
    let set = this.listeners.get(channel);
    if (!set) {
      set = new Set();
      this.listeners.set(channel, set);
      await subscriber.subscribe(channel);
    }
    set.add(listener);
    return () => {
      const current = this.listeners.get(channel);
      if (!current) return;
      current.delete(listener);
      if (current.size === 0) {
        this.listeners.delete(channel);
        this.subscriber?.unsubscribe(channel).catch(() => undefined);
      }
    };
  }

  async publish(channel: string, message: unknown): Promise<void> {
    await this.redis.publish(channel, typeof message === 'string' ? message : JSON.stringify(message));
  }

  private ensureSubscriber(): Redis {
    if (!this.subscriber) {
      const subscriber = this.redis.duplicate({ maxRetriesPerRequest: null, lazyConnect: false });
      subscriber.on('error', (err) => this.logger.warn(`subscriber connection: ${err.message}`));
      subscriber.on('message', (channel: string, message: string) => {
        for (const listener of this.listeners.get(channel) ?? []) {
          try {
            listener(message);
          } catch (err) {
            this.logger.error(`event listener failed: ${(err as Error).message}`);
          }
        }
      });
      this.subscriber = subscriber;
    }
    return this.subscriber;
  }

  /** Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.listeners.clear();
      await this.subscriber?.quit().catch(() => this.subscriber?.disconnect());
      await this.redis.quit().catch(() => this.redis.disconnect());
    })();
    return this.closing;
  }

  onApplicationShutdown(): Promise<void> {
    return this.close();
  }
}
