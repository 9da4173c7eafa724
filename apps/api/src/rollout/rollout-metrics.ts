import { Injectable, Optional } from '@nestjs/common';
import { Counter, register, type Registry } from 'prom-client';
import { MetricsService } from '../metrics/metrics.service.js';

export const AUTO_ROLLBACKS_METRIC = 'planforge_auto_rollbacks_total';

/**
 * planforge_auto_rollbacks_total{model, channel, reason}: on the API's /metrics
 * registry (MetricsService) when present, else on prom-client's default register.
 * `reason` is the check that failed (p99_regression, error_rate, throughput_drop),
 * never the free-text reason: labels must stay few.
 */
@Injectable()
export class RolloutMetrics {
  readonly autoRollbacks: Counter<'model' | 'channel' | 'reason'>;

  constructor(@Optional() metrics?: MetricsService) {
    const registry: Registry = metrics?.registry ?? register;
    const existing = registry.getSingleMetric(AUTO_ROLLBACKS_METRIC) as Counter<'model' | 'channel' | 'reason'> | undefined;
    this.autoRollbacks =
      existing ??
      new Counter({
        name: AUTO_ROLLBACKS_METRIC,
        help: 'Promotions the rollout watcher rolled back automatically, by model, channel and failed check.',
        labelNames: ['model', 'channel', 'reason'],
        registers: [registry],
      });
  }
}
