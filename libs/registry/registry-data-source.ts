import pg from 'pg';
import { DataSource, type DataSourceOptions } from 'typeorm';

interface PgClientLike {
  on(event: 'error', listener: (err: Error) => void): unknown;
}
interface PgPoolLike {
  on(event: 'connect', listener: (client: PgClientLike) => void): unknown;
  _clients?: PgClientLike[];
}
const guardedClients = new WeakSet<PgClientLike>();

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
    this.guardClientErrors();
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

  /**
   * A pg client that Postgres disconnects (shutdown, restart, terminated backend) can emit
   * 'error' more than once; TypeORM and pg-pool each listen only until their first one, so a
   * second emission on a client a QueryRunner held would crash the process. Every client of
   * the pool gets a listener of its own: the error still reaches the query that was running
   * (as a rejection) and the pool (which drops the client); the process stays up.
   */
  private guardClientErrors(): void {
    const pool = (this.driver as unknown as { master?: PgPoolLike }).master;
    if (!pool || typeof pool.on !== 'function') return;
    const guard = (client: PgClientLike) => {
      if (!guardedClients.has(client)) {
        guardedClients.add(client);
        client.on('error', () => undefined);
      }
    };
    pool.on('connect', guard);
    for (const client of pool._clients ?? []) guard(client);
  }

  /**
   * Runs pending migrations, one process at a time; returns the names applied. The advisory
   * lock is held on a connection of its own, outside the pool: with a pool of one the
   * migrations would otherwise wait for the connection holding the lock.
   */
  async runMigrationsLocked(): Promise<string[]> {
    const url = (this.options as { url?: string }).url;
    const lock = new pg.Client({ connectionString: url, application_name: 'planforge-migration-lock' });
    lock.on('error', () => undefined); // a lost lock connection fails the queries below
    await lock.connect();
    try {
      await lock.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY.toString()]);
      try {
        const applied = await this.runMigrations({ transaction: 'each' });
        return applied.map((m) => m.name);
      } finally {
        await lock.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY.toString()]);
      }
    } finally {
      await lock.end().catch(() => undefined);
    }
  }
}
