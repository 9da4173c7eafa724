import type { Provider, Type } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { BuildControlRepository } from '../../../libs/registry/index.js';
import { BuildControlController } from './control/build-control.controller.js';
import { BuildControlService } from './control/build-control.service.js';
import { SubmissionRateLimitGuard } from './control/submission-rate-limit.guard.js';
import { BuildEventsController } from './events/build-events.controller.js';
import { BuildEventsService } from './events/build-events.service.js';
import { OperationsRedisRepository } from './events/operations-redis.repository.js';
import { RequestContextHooks } from './logging/request-context.hooks.js';
import { DashboardController } from './dashboard/dashboard.controller.js';
import { DocsController } from './docs/docs.controller.js';
import { OpenApiService } from './docs/openapi.service.js';
import { MetricsController } from './metrics/metrics.controller.js';
import { MetricsService } from './metrics/metrics.service.js';
import { DatabaseRepository } from './repositories/database.repository.js';
import { WorkerRegistryController } from './workers/worker-registry.controller.js';
import { WorkerRegistryService } from './workers/worker-registry.service.js';

/**
 * Operations and user experience: live build events, cancellation, logs,
 * priorities and rate limits, metrics, the worker registry, the OpenAPI
 * document and the dashboard. Listed here so api.module.ts only spreads them.
 */
export const OPERATIONS_CONTROLLERS: Type<unknown>[] = [BuildEventsController, BuildControlController, WorkerRegistryController, MetricsController, DocsController, DashboardController];

export const OPERATIONS_PROVIDERS: Provider[] = [
  RequestContextHooks,
  OperationsRedisRepository,
  {
    provide: BuildControlRepository,
    useFactory: (database: DatabaseRepository) => new BuildControlRepository(database.dataSource),
    inject: [DatabaseRepository],
  },
  BuildEventsService,
  BuildControlService,
  WorkerRegistryService,
  MetricsService,
  OpenApiService,
  // After ApiKeyGuard (providers are spread after it): the caller is known when tokens are spent.
  { provide: APP_GUARD, useClass: SubmissionRateLimitGuard },
];
