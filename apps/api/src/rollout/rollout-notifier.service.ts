import { randomUUID } from 'node:crypto';
import { Inject, Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';
import { DEFAULT_ROLLOUT_CONFIG, type RolloutConfig } from '../../../../libs/config/index.js';
import { API_CONFIG, type ApiAppConfig } from '../api-config.token.js';
import { signGeneric } from '../services/webhook-signatures.js';

/** One attempt may take this long before it counts as failed. */
const ATTEMPT_TIMEOUT_MS = 5000;

export interface RolloutNotification {
  event: 'rollout.rolled_back' | 'rollout.completed';
  [key: string]: unknown;
}

/**
 * Outgoing rollout notifications: the JSON body signed like the incoming generic
 * webhook (`X-Planforge-Signature: t=<unix>,v1=<hex HMAC-SHA256("<t>.<body>")>`),
 * POSTed in the background with bounded retries (exponential backoff; a 4xx other
 * than 408/429 is final). Deliveries in flight at shutdown get one last chance to finish.
 */
@Injectable()
export class RolloutNotifier implements OnModuleDestroy {
  private readonly logger = new Logger('RolloutNotifier');
  private readonly config: RolloutConfig;
  private readonly inFlight = new Set<Promise<void>>();
  private stopping = false;

  constructor(@Inject(API_CONFIG) config: ApiAppConfig) {
    this.config = config.rollout ?? DEFAULT_ROLLOUT_CONFIG;
  }

  send(url: string, secret: string, notification: RolloutNotification): void {
    const delivery = this.deliver(url, secret, notification).finally(() => this.inFlight.delete(delivery));
    this.inFlight.add(delivery);
  }

  private async deliver(url: string, secret: string, notification: RolloutNotification): Promise<void> {
    const id = randomUUID();
    const body = JSON.stringify({ ...notification, deliveryId: id });
    for (let attempt = 1; attempt <= this.config.webhookAttempts; attempt++) {
      let outcome: string;
      try {
        const res = await fetch(url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'user-agent': 'planforge-rollout-watch',
            'x-planforge-event': notification.event,
            'x-planforge-delivery': id,
            // Signed per attempt: the timestamp stays fresh for the receiver's tolerance window.
            'x-planforge-signature': signGeneric(secret, body),
          },
          body,
          signal: AbortSignal.timeout(ATTEMPT_TIMEOUT_MS),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) return;
        outcome = `HTTP ${res.status}`;
        if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
          this.logger.warn(`${notification.event} to ${url}: ${outcome}, not retried (delivery ${id})`);
          return;
        }
      } catch (err) {
        outcome = (err as Error).message;
      }
      if (attempt === this.config.webhookAttempts || this.stopping) {
        this.logger.warn(`${notification.event} to ${url} failed after ${attempt} attempt(s): ${outcome} (delivery ${id})`);
        return;
      }
      await new Promise((r) => setTimeout(r, this.config.webhookRetryMs * 2 ** (attempt - 1)).unref());
    }
  }

  /** For tests and shutdown: resolves when every delivery in flight has finished. */
  async drain(): Promise<void> {
    while (this.inFlight.size) await Promise.allSettled([...this.inFlight]);
  }

  async onModuleDestroy(): Promise<void> {
    this.stopping = true;
    await Promise.race([this.drain(), new Promise((r) => setTimeout(r, ATTEMPT_TIMEOUT_MS).unref())]);
  }
}
