import type { Provider, Type } from '@nestjs/common';
import { NotificationOutboxRepository, RolloutRepository, TelemetryRepository } from '../../../../libs/registry/index.js';
import { DatabaseRepository } from '../repositories/database.repository.js';
import { TelemetryController } from '../telemetry/telemetry.controller.js';
import { TelemetryService } from '../telemetry/telemetry.service.js';
import { CanaryResolver } from './rollout-canary.js';
import { RolloutController } from './rollout.controller.js';
import { RolloutHooks } from './rollout-hooks.service.js';
import { RolloutMetrics } from './rollout-metrics.js';
import { RolloutNotifier } from './rollout-notifier.service.js';
import { RolloutService } from './rollout.service.js';
import { RolloutWatcherService } from './rollout-watcher.service.js';

/**
 * Rollout watch: fleet telemetry intake, rollout policies, canary resolution and
 * the watcher that rolls regressing promotions back. Listed here so api.module.ts
 * only spreads them.
 */
export const ROLLOUT_CONTROLLERS: Type<unknown>[] = [TelemetryController, RolloutController];

export const ROLLOUT_PROVIDERS: Provider[] = [
  ...[TelemetryRepository, RolloutRepository, NotificationOutboxRepository].map((repository) => ({
    provide: repository,
    useFactory: (database: DatabaseRepository) => new repository(database.dataSource),
    inject: [DatabaseRepository],
  })),
  TelemetryService,
  RolloutHooks,
  CanaryResolver,
  RolloutMetrics,
  RolloutNotifier,
  RolloutWatcherService,
  RolloutService,
];
