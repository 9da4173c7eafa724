import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import pg from 'pg';
import type { Target } from '../../../../libs/contracts/index.js';
import { RolloutRepository, type CanaryResolution } from '../../../../libs/registry/index.js';
import { API_CONFIG, type ApiAppConfig } from '../api-config.token.js';

/** Sent by the database itself (triggers of migration 1764700000000-ResolveInvalidation) on every write that can change a resolve. */
export const RESOLVE_CHANGED_CHANNEL = 'planforge_resolve_changed';

/** Upper bound on how long a cached resolution is trusted even while notifications flow. */
const CACHE_TTL_MS = 10_000;
const CACHE_MAX = 10_000;
const RECONNECT_MS = 1_000;
export const RESOLVE_LISTENER_APPLICATION_NAME = 'planforge-api-resolve';

function freeze(value: CanaryResolution): CanaryResolution {
  Object.freeze(value.plan);
  if (value.canary) {
    if (value.canary.previous) Object.freeze(value.canary.previous);
    Object.freeze(value.canary);
  }
  return Object.freeze(value);
}

/**
 * A resolution is cached only when no row's absence decides it: with a canary
 * watching and no plan of the version it replaced, an insert (of that version
 * or its plan) would change the answer, and inserts do not notify.
 */
function cacheable(value: CanaryResolution): boolean {
  return !value.canary || value.canary.previous !== null;
}

/**
 * RolloutRepository.resolve (model, channel, target → the pointed-at plan and
 * canary state) with an in-process cache that is only used while this instance
 * LISTENs to planforge_resolve_changed, which database triggers send on every
 * write that can change a result, delivered when it commits. While the listener
 * is down (connecting, lost) every lookup goes to Postgres.
 *
 * Race safety: a generation counter grows on every invalidation (a
 * notification, a local write, the listener lost or back). A lookup reads it
 * before its query and stores the result only if it is unchanged afterwards,
 * so a result read before a commit is never stored after that commit's
 * notification has arrived; one stored before the notification arrives is
 * dropped by it. Concurrent lookups of one key in one generation share the
 * query. "Not found" is never cached.
 */
@Injectable()
export class ResolveCacheRepository implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('ResolveCache');
  private readonly cache = new Map<string, { value: CanaryResolution; at: number }>();
  private readonly inflight = new Map<string, { generation: number; promise: Promise<CanaryResolution | null> }>();
  private generation = 0;
  private listener: pg.Client | null = null;
  private listening = false;
  private closed = false;
  private reconnectTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly rollouts: RolloutRepository,
    @Inject(API_CONFIG) private readonly config: ApiAppConfig,
  ) {}

  async onModuleInit(): Promise<void> {
    // Not awaited past a failure: without the listener resolve still works, uncached.
    await this.connect().catch(() => this.scheduleReconnect());
  }

  /** What the channel serves for this target (RolloutRepository.resolve); shared, frozen objects. */
  async resolve(model: string, channel: string, target: Target): Promise<CanaryResolution | null> {
    if (!this.listening) return this.rollouts.resolve(model, channel, target);
    // Model and channel names cannot contain a newline (their patterns), so keys do not collide.
    const key = `${model}\n${channel}\n${target}`;
    const hit = this.cache.get(key);
    if (hit) {
      if (Date.now() - hit.at < CACHE_TTL_MS) return hit.value;
      this.cache.delete(key);
    }
    const generation = this.generation;
    const pending = this.inflight.get(key);
    if (pending && pending.generation === generation) return pending.promise;
    const promise = this.rollouts.resolve(model, channel, target).then((value) => {
      if (value === null) return null;
      const frozen = freeze(value);
      // Stored only if nothing was invalidated since before the query was sent.
      if (this.listening && this.generation === generation && cacheable(frozen)) {
        if (this.cache.size >= CACHE_MAX) this.cache.delete(this.cache.keys().next().value!);
        this.cache.set(key, { value: frozen, at: Date.now() });
      }
      return frozen;
    });
    const entry = { generation, promise };
    this.inflight.set(key, entry);
    const forget = () => {
      if (this.inflight.get(key) === entry) this.inflight.delete(key);
    };
    promise.then(forget, forget);
    return promise;
  }

  /**
   * Forget everything: on a notification, and synchronously after this
   * instance's own committed channel moves (their notification may reach the
   * listener after the HTTP response has been sent).
   */
  invalidate(): void {
    this.generation++;
    this.cache.clear();
  }

  get isListening(): boolean {
    return this.listening;
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client({ connectionString: this.config.databaseUrl, application_name: RESOLVE_LISTENER_APPLICATION_NAME });
    client.on('notification', () => this.invalidate());
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client));
    this.listener = client;
    await client.connect();
    await client.query(`LISTEN ${RESOLVE_CHANGED_CHANNEL}`);
    if (this.closed || this.listener !== client) {
      await client.end().catch(() => undefined);
      return;
    }
    // Anything changed while we were not listening is dropped with the rest; lookups
    // started before this point (generation bumped) are not stored.
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
    this.logger.warn(`resolve invalidation listener lost${err ? `: ${err.message}` : ''}; resolves are uncached until it is back`);
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
    this.invalidate();
    clearTimeout(this.reconnectTimer);
    const client = this.listener;
    this.listener = null;
    await client?.end().catch(() => undefined);
  }
}
