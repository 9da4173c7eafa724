import { Module, type DynamicModule } from '@nestjs/common';
import { APP_FILTER, APP_GUARD } from '@nestjs/core';
import {
  ApiKeyRepository,
  AuditLogRepository,
  BuildCacheRepository,
  BuildRepository,
  ChannelRepository,
  IdempotencyRepository,
  ModelRepository,
  PlanRepository,
  VersionAdminRepository,
  VersionRepository,
  WebhookRepository,
} from '../../../libs/registry/index.js';
import { ApiKeyGuard } from './auth/api-key.guard.js';
import { AdminController } from './controllers/admin.controller.js';
import { ChannelController } from './controllers/channel.controller.js';
import { ResolveController } from './controllers/resolve.controller.js';
import { VersionAdminController } from './controllers/version-admin.controller.js';
import { WebhookController } from './controllers/webhook.controller.js';
import { ApiKeyCacheRepository } from './repositories/api-key-cache.repository.js';
import { ResolveCacheRepository } from './repositories/resolve-cache.repository.js';
import { ModelFetcherRepository } from './repositories/model-fetcher.repository.js';
import { ApiKeyService } from './services/api-key.service.js';
import { AuditService } from './services/audit.service.js';
import { ChannelService } from './services/channel.service.js';
import { ResolveService } from './services/resolve.service.js';
import { TriggerService } from './services/trigger.service.js';
import { VersionAdminService } from './services/version-admin.service.js';
import { WebhookService } from './services/webhook.service.js';
import { API_CONFIG, type ApiAppConfig } from './api-config.token.js';
import { BuildController } from './controllers/build.controller.js';
import { HealthController } from './controllers/health.controller.js';
import { ModelController } from './controllers/model.controller.js';
import { ApiExceptionFilter } from './filters/api-exception.filter.js';
import { DatabaseRepository } from './repositories/database.repository.js';
import { ModelInspectorRepository } from './repositories/model-inspector.repository.js';
import { QueueRepository } from './repositories/queue.repository.js';
import { StorageRepository } from './repositories/storage.repository.js';
import { BuildService } from './services/build.service.js';
import { CachedVersionBatcher } from './services/cached-version-batcher.js';
import { BuildCacheLookupRepository } from './repositories/build-cache-lookup.repository.js';
import { HealthService } from './services/health.service.js';
import { ModelService } from './services/model.service.js';
import { ModelUploadService } from './services/model-upload.service.js';
import { OPERATIONS_CONTROLLERS, OPERATIONS_PROVIDERS } from './operations.providers.js';
import { ROLLOUT_CONTROLLERS, ROLLOUT_PROVIDERS } from './rollout/rollout.providers.js';

/** The registry repositories (libs/registry) are plain classes over the API's DataSource. */
const registryRepositories = [
  ModelRepository,
  VersionRepository,
  BuildRepository,
  PlanRepository,
  ApiKeyRepository,
  AuditLogRepository,
  ChannelRepository,
  BuildCacheRepository,
  VersionAdminRepository,
  IdempotencyRepository,
  WebhookRepository,
].map((repository) => ({
  provide: repository,
  useFactory: (database: DatabaseRepository) => new repository(database.dataSource),
  inject: [DatabaseRepository],
}));

@Module({})
export class ApiModule {
  static forRoot(config: ApiAppConfig): DynamicModule {
    return {
      module: ApiModule,
      controllers: [
        BuildController,
        ModelController,
        HealthController,
        ChannelController,
        ResolveController,
        VersionAdminController,
        AdminController,
        WebhookController,
        ...OPERATIONS_CONTROLLERS,
        ...ROLLOUT_CONTROLLERS,
      ],
      providers: [
        { provide: API_CONFIG, useValue: config },
        { provide: APP_FILTER, useClass: ApiExceptionFilter },
        // Every route needs an API key unless @Public(); roles per @RequireRole.
        { provide: APP_GUARD, useClass: ApiKeyGuard },
        DatabaseRepository,
        QueueRepository,
        StorageRepository,
        ModelInspectorRepository,
        ...registryRepositories,
        ModelUploadService,
        BuildCacheLookupRepository,
        CachedVersionBatcher,
        BuildService,
        ModelService,
        HealthService,
        ModelFetcherRepository,
        ApiKeyCacheRepository,
        ResolveCacheRepository,
        AuditService,
        ApiKeyService,
        ChannelService,
        ResolveService,
        VersionAdminService,
        TriggerService,
        WebhookService,
        ...ROLLOUT_PROVIDERS,
        // Last: its guard must run after ApiKeyGuard.
        ...OPERATIONS_PROVIDERS,
      ],
    };
  }
}
