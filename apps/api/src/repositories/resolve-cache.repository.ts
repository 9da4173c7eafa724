import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { Target } from '../../../../libs/contracts/index.js';
import { RolloutRepository, type CanaryResolution } from '../../../../libs/registry/index.js';
import { API_CONFIG, type ApiAppConfig } from '../api-config.token.js';
import { PgNotificationListener } from './pg-notification-listener.js';

/** Sent by the database itself (triggers of migration 1764700000000-ResolveInvalidation) on every write that can change a resolve. */
export const RESOLVE_CHANGED_CHANNEL = 'planforge_resolve_changed';

/** Upper bound on how long a cached resolution is trusted even while notifications flow. */
const CACHE_TTL_MS = 10_000;
const CACHE_MAX = 10_000;
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
  private readonly listener: PgNotificationListener;

  constructor(
    private readonly rollouts: RolloutRepository,
    @Inject(API_CONFIG) config: ApiAppConfig,
  ) {
    this.listener = new PgNotificationListener({
      databaseUrl: config.databaseUrl,
      channel: RESOLVE_CHANGED_CHANNEL,
      applicationName: RESOLVE_LISTENER_APPLICATION_NAME,
      // Lookups started before a notification (generation bumped) are not stored.
      onChange: () => this.invalidate(),
      logger: this.logger,
      whileDown: 'resolves are uncached until it is back',
    });
  }

  async onModuleInit(): Promise<void> {
    // Without the listener resolve still works, uncached.
    await this.listener.start();
  }

  /** What the channel serves for this target (RolloutRepository.resolve); shared, frozen objects. */
  async resolve(model: string, channel: string, target: Target): Promise<CanaryResolution | null> {
    if (!this.listener.listening) return this.rollouts.resolve(model, channel, target);
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
      if (this.listener.listening && this.generation === generation && cacheable(frozen)) {
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
    return this.listener.listening;
  }

  async onApplicationShutdown(): Promise<void> {
    await this.listener.close();
    this.invalidate();
  }
}
