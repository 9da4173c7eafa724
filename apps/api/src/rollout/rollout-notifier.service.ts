import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { DEFAULT_ROLLOUT_CONFIG, type RolloutConfig } from '../../../../libs/config/index.js';
import { NotificationOutboxRepository, type OutboxNotification } from '../../../../libs/registry/index.js';
import { API_CONFIG, type ApiAppConfig } from '../api-config.token.js';
import { signGeneric } from '../services/webhook-signatures.js';

/** One attempt may take this long before it counts as failed. */
const ATTEMPT_TIMEOUT_MS = 5000;
/** A claimed notification is not picked again for this long (a claimer that died is retried after it). */
const LEASE_MS = 4 * ATTEMPT_TIMEOUT_MS;
/** Notifications delivered at once per instance. */
const BATCH = 10;
/** Longest sleep between looks at the outbox (other instances' notifications, retries of dead claimers). */
const MAX_IDLE_MS = 5000;

export interface RolloutNotification {
  event: 'rollout.rolled_back' | 'rollout.completed';
  [key: string]: unknown;
}

/**
 * Outgoing rollout notifications through a transactional outbox (notification_outbox):
 * enqueue() writes the notification in the transaction that rolls back or completes
 * the rollout, so it exists exactly when the change does; every API instance
 * delivers due rows (claimed with a lease, so one attempt at a time across instances)
 * and retries survive restarts. The JSON body is signed like the incoming generic
 * webhook (`X-Planforge-Signature: t=<unix>,v1=<hex HMAC-SHA256("<t>.<body>")>`) with
 * the channel's current policy secret; X-Planforge-Delivery is the row id, the same on
 * every attempt. Retries back off exponentially; a 4xx other than 408/429 is final.
 */
@Injectable()
export class RolloutNotifier implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('RolloutNotifier');
  private readonly config: RolloutConfig;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  private stopped = false;

  constructor(
    @Inject(API_CONFIG) config: ApiAppConfig,
    private readonly outbox: NotificationOutboxRepository,
  ) {
    this.config = config.rollout ?? DEFAULT_ROLLOUT_CONFIG;
  }

  onApplicationBootstrap(): void {
    // Whatever an earlier process left pending is delivered now.
    this.kick();
  }

  /** In the caller's transaction; call kick() once it has committed. */
  enqueue(em: EntityManager, channelId: string, notification: RolloutNotification): Promise<string> {
    return this.outbox.enqueue(em, channelId, notification.event, notification);
  }

  /** Delivers what is due now (coalesced: one pass at a time, another right after if asked meanwhile). */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.running = this.pass()
      .catch((err: unknown) => this.logger.warn(`outbox pass failed: ${(err as Error).message}`))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        } else {
          void this.sleep();
        }
      });
  }

  /** For tests and shutdown: resolves when the current pass has finished. */
  async drain(): Promise<void> {
    while (this.running) await this.running;
  }

  private async pass(): Promise<void> {
    // Bounded: a pass never spins; whatever is left waits for the next one.
    for (let batch = 0; batch < 100; batch++) {
      const due = await this.outbox.claimDue(BATCH, LEASE_MS);
      if (!due.length || this.stopped) return;
      await Promise.all(due.map((n) => this.deliver(n)));
    }
  }

  /** Until the next due row (at most MAX_IDLE_MS: rows of other instances appear without a kick here). */
  private async sleep(): Promise<void> {
    if (this.stopped) return;
    let wait = MAX_IDLE_MS;
    try {
      const next = await this.outbox.nextDue();
      if (next) wait = Math.min(MAX_IDLE_MS, Math.max(0, next.getTime() - Date.now()));
    } catch {
      // Postgres away: look again later.
    }
    if (this.stopped || this.running) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.kick(), wait);
    this.timer.unref();
  }

  private async deliver(n: OutboxNotification): Promise<void> {
    const attempt = n.attempts + 1;
    if (!n.webhookUrl || !n.webhookSecret) {
      await this.outbox.attemptFailed(n.id, 'the channel has no rollout webhook any more', true, 0);
      return;
    }
    const body = JSON.stringify({ ...n.body, deliveryId: n.id });
    let outcome: string;
    let final = false;
    try {
      const res = await fetch(n.webhookUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'planforge-rollout-watch',
          'x-planforge-event': n.event,
          'x-planforge-delivery': n.id,
          // Signed per attempt: the timestamp stays fresh for the receiver's tolerance window.
          'x-planforge-signature': signGeneric(n.webhookSecret, body),
        },
        body,
        signal: AbortSignal.timeout(ATTEMPT_TIMEOUT_MS),
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) {
        await this.outbox.delivered(n.id);
        return;
      }
      outcome = `HTTP ${res.status}`;
      final = res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429;
    } catch (err) {
      outcome = (err as Error).message;
    }
    final ||= attempt >= this.config.webhookAttempts;
    if (final) this.logger.warn(`${n.event} to ${n.webhookUrl} failed after ${attempt} attempt(s): ${outcome} (delivery ${n.id})`);
    await this.outbox.attemptFailed(n.id, outcome, final, this.config.webhookRetryMs * 2 ** (attempt - 1));
  }

  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    // A pass in flight finishes (bounded by the attempt timeout) while Postgres is still open; what is left stays pending.
    await Promise.race([this.drain(), new Promise((r) => setTimeout(r, ATTEMPT_TIMEOUT_MS + 1000).unref())]);
  }
}
