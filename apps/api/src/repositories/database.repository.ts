import { Inject, Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { ModelEntity, createDataSource } from '../../../../libs/registry/index.js';
import { API_CONFIG, type ApiAppConfig } from '../api-config.token.js';

type RegistryDataSource = ReturnType<typeof createDataSource>;

/** Owns the Postgres connection pool of the API; the registry repositories share it. */
@Injectable()
export class DatabaseRepository implements OnModuleInit, OnApplicationShutdown {
  readonly dataSource: RegistryDataSource;
  private closing?: Promise<void>;

  constructor(@Inject(API_CONFIG) config: ApiAppConfig) {
    this.dataSource = createDataSource(config.databaseUrl, { applicationName: 'planforge-api' });
  }

  /** Connects and applies pending migrations (under the registry's advisory lock). */
  async onModuleInit(): Promise<void> {
    await this.dataSource.initialize();
  }

  async ping(): Promise<void> {
    await this.dataSource.query('SELECT 1');
  }

  /** The registry's ModelRepository looks models up by name; build pages need them by id. */
  findModelById(id: string): Promise<ModelEntity | null> {
    return this.dataSource.getRepository(ModelEntity).findOneBy({ id });
  }

  /** Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.dataSource.isInitialized ? this.dataSource.destroy() : Promise.resolve();
    return this.closing;
  }

  onApplicationShutdown(): Promise<void> {
    return this.close();
  }
}
