/**
 * Postgres dropping connections (shutdown, restart, pg_terminate_backend) must never crash a
 * process through an unhandled 'error' event of a pg client, also one a QueryRunner held.
 */
import pg from 'pg';
import type { AppConfig } from '../../libs/config/index.js';
import { createDataSource, type RegistryDataSource } from '../../libs/registry/index.js';
import { cleanupTestConfig, testConfig } from '../helpers/env.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('registry data source when Postgres drops its connections', () => {
  let config: AppConfig;
  let ds: RegistryDataSource;
  let admin: pg.Client;
  const uncaught: unknown[] = [];
  const onUncaught = (err: unknown) => uncaught.push(err);

  beforeAll(async () => {
    config = await testConfig();
    ds = await createDataSource(config.databaseUrl, { poolSize: 3, applicationName: 'pf-disconnect-test' }).initialize();
    admin = new pg.Client({ connectionString: config.databaseUrl });
    await admin.connect();
    process.on('uncaughtException', onUncaught);
  });
  afterAll(async () => {
    process.off('uncaughtException', onUncaught);
    await admin?.end();
    await ds?.destroy();
    await cleanupTestConfig();
  });

  it('survives its backends being terminated while a query runner holds a client and others are idle', async () => {
    // Fill the pool: idle clients plus one held by a query runner between statements (as in a transaction).
    await Promise.all([ds.query('SELECT pg_sleep(0.05)'), ds.query('SELECT pg_sleep(0.05)')]);
    const held = ds.createQueryRunner();
    await held.connect();
    await held.query('SELECT 1');
    const killed = await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pf-disconnect-test'`);
    expect(killed.rowCount).toBeGreaterThanOrEqual(2);
    await sleep(500);
    await expect(held.query('SELECT 1')).rejects.toThrow();
    await held.release().catch(() => undefined);
    // The pool replaces the dead clients; the process is still here.
    const [{ x }] = await ds.query('SELECT 41 + 1 AS x');
    expect(x).toBe(42);
    expect(uncaught).toEqual([]);
  });
});
