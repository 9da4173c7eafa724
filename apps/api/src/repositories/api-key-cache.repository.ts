import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import pg from 'pg';
import { API_KEY_REVOKED_CHANNEL, ApiKeyRepository, hashApiKey, type ApiKeyRecord } from '../../../../libs/registry/index.js';
import { API_CONFIG, type ApiAppConfig } from '../api-config.token.js';

/** Upper bound on how long a cached lookup is trusted even while notifications flow. */
const CACHE_TTL_MS = 10_000;
const CACHE_MAX = 10_000;
const RECONNECT_MS = 1_000;

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
  private listener: pg.Client | null = null;
  private listening = false;
  private closed = false;
  private reconnectTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly keys: ApiKeyRepository,
    @Inject(API_CONFIG) private readonly config: ApiAppConfig,
  ) {}

  async onModuleInit(): Promise<void> {
    // Not awaited past a failure: without the listener the API still works, uncached.
    await this.connect().catch(() => this.scheduleReconnect());
  }

  /** The active key with this secret, or null. */
  async findActive(key: string): Promise<ApiKeyRecord | null> {
    const hash = hashApiKey(key);
    if (this.listening) {
      const hit = this.cache.get(hash);
      if (hit && Date.now() - hit.at < CACHE_TTL_MS) return hit.record;
    }
    const record = await this.keys.findActive(key);
    if (record && this.listening) {
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
    return this.listening;
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client({ connectionString: this.config.databaseUrl, application_name: 'planforge-api-keys' });
    client.on('notification', () => this.invalidate());
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client));
    this.listener = client;
    await client.connect();
    await client.query(`LISTEN ${API_KEY_REVOKED_CHANNEL}`);
    if (this.closed || this.listener !== client) {
      await client.end().catch(() => undefined);
      return;
    }
    // Anything revoked while we were not listening is dropped with the rest.
    this.invalidate();
    this.listening = true;
  }

  private lost(client: pg.Client, err?: Error): void {
    if (this.listener !== client) return;
    this.listening = false;
    this.invalidate();
    this.listener = null;
    client.end().catch(() => undefined);
    if (this.closed) return;
    this.logger.warn(`revocation listener lost${err ? `: ${err.message}` : ''}; key lookups are uncached until it is back`);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connect().catch((err: Error) => {
        if (this.listener) this.lost(this.listener, err);
        else this.scheduleReconnect();
      });
    }, RECONNECT_MS);
    this.reconnectTimer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    this.closed = true;
    this.listening = false;
    clearTimeout(this.reconnectTimer);
    const client = this.listener;
    this.listener = null;
    await client?.end().catch(() => undefined);
  }
}
