import { DataSource, type DataSourceOptions } from 'typeorm';

/** Any constant shared by every process of the farm; names the migration lock. */
const MIGRATION_LOCK_KEY = 0x706c616e666f7267n; // "planforg"

/**
 * A DataSource whose initialize() runs pending migrations under a Postgres
 * advisory lock: the API and N workers boot at once, and TypeORM's own
 * migrationsRun has no lock, so two processes would both try CREATE TABLE.
 */
export class RegistryDataSource extends DataSource {
  constructor(
    options: DataSourceOptions,
    private readonly runMigrationsOnInit: boolean,
  ) {
    super({ ...options, migrationsRun: false });
  }

  override async initialize(): Promise<this> {
    await super.initialize();
    if (this.runMigrationsOnInit) {
      try {
        await this.runMigrationsLocked();
      } catch (err) {
        await this.destroy().catch(() => undefined);
        throw err;
      }
    }
    return this;
  }

  /** Runs pending migrations, one process at a time; returns the names applied. */
  async runMigrationsLocked(): Promise<string[]> {
    const lockRunner = this.createQueryRunner();
    await lockRunner.connect();
    try {
      await lockRunner.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY.toString()]);
      try {
        const applied = await this.runMigrations({ transaction: 'each' });
        return applied.map((m) => m.name);
      } finally {
        await lockRunner.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY.toString()]);
      }
    } finally {
      await lockRunner.release();
    }
  }
}
