import { REGISTRY_ENTITIES } from './entities/index.js';
import { REGISTRY_MIGRATIONS } from './migrations/index.js';
import { RegistryDataSource } from './registry-data-source.js';

export interface CreateDataSourceOptions {
  /** Apply pending migrations in initialize() (default true). The schema is never synchronized. */
  migrationsRun?: boolean;
  /** Connection pool size (default 10). */
  poolSize?: number;
  /** Log SQL (default false). */
  logging?: boolean;
  /** Shows up in pg_stat_activity. */
  applicationName?: string;
}

/** A registry DataSource, not yet initialized: call `await ds.initialize()`. */
export function createDataSource(databaseUrl: string, opts: CreateDataSourceOptions = {}): RegistryDataSource {
  return new RegistryDataSource(
    {
      type: 'postgres',
      url: databaseUrl,
      entities: REGISTRY_ENTITIES,
      migrations: REGISTRY_MIGRATIONS,
      migrationsTableName: 'typeorm_migrations',
      synchronize: false,
      // Migrations create the schema with the built-in gen_random_uuid(); no extension needed.
      installExtensions: false,
      poolSize: opts.poolSize ?? 10,
      logging: opts.logging ?? false,
      applicationName: opts.applicationName ?? 'planforge',
    },
    opts.migrationsRun ?? true,
  );
}
