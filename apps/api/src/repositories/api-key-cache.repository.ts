import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { API_KEY_REVOKED_CHANNEL, ApiKeyRepository, hashApiKey, type ApiKeyRecord } from '../../../../libs/registry/index.js';
import { API_CONFIG, type ApiAppConfig } from '../api-config.token.js';
import { PgNotificationListener } from './pg-notification-listener.js';

/** Upper bound on how long a cached lookup is trusted even while notifications flow. */
const CACHE_TTL_MS = 10_000;
const CACHE_MAX = 10_000;

/**
 * Key lookups with a small cache that is only used while this instance LISTENs
 * to revocations (Postgres NOTIFY, sent in the revoking transaction): a revoked
 * key stops working on every instance as soon as the revocation commits. While
 * the listener is down (connecting, lost) every request goes to Postgres.
 * Unknown keys are never cached: a key minted a moment ago works at once.
 */
@Injectable()
export class ApiKeyCacheRepository implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('ApiKeyCache');
  private readonly cache = new Map<string, { record: ApiKeyRecord; at: number }>();
  private readonly listener: PgNotificationListener;

  constructor(
    private readonly keys: ApiKeyRepository,
    @Inject(API_CONFIG) config: ApiAppConfig,
  ) {
    this.listener = new PgNotificationListener({
      databaseUrl: config.databaseUrl,
      channel: API_KEY_REVOKED_CHANNEL,
      applicationName: 'planforge-api-keys',
      onChange: () => this.invalidate(),
      logger: this.logger,
      whileDown: 'key lookups are uncached until it is back',
    });
  }

  async onModuleInit(): Promise<void> {
    // Without the listener the API still works, uncached.
    await this.listener.start();
  }

  /** The active key with this secret, or null. */
  async findActive(key: string): Promise<ApiKeyRecord | null> {
    const hash = hashApiKey(key);
    if (this.listener.listening) {
      const hit = this.cache.get(hash);
      if (hit && Date.now() - hit.at < CACHE_TTL_MS) return hit.record;
    }
    const record = await this.keys.findActive(key);
    if (record && this.listener.listening) {
      if (this.cache.size >= CACHE_MAX) this.cache.clear();
      this.cache.set(hash, { record, at: Date.now() });
    }
    return record;
  }

  /** Revocations are rare: forget everything. */
  invalidate(): void {
    this.cache.clear();
  }

  get isListening(): boolean {
    return this.listener.listening;
  }

  async onApplicationShutdown(): Promise<void> {
    await this.listener.close();
    this.invalidate();
  }
}
