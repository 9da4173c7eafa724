// Applies pending registry migrations and exits: the Kubernetes migrations Job and
// `docker compose run --rm api node scripts/migrate.js`. Needs a built tree (dist/).
// (The API and workers also migrate at boot, under a Postgres advisory lock; this
// lets a deploy migrate once, before any new pod starts.)
import { loadConfig } from '../dist/libs/config/index.js';
import { createDataSource } from '../dist/libs/registry/index.js';

const config = loadConfig(process.env);
// Two connections: one holds the migration advisory lock while the other migrates.
const dataSource = createDataSource(config.databaseUrl, { migrationsRun: false, poolSize: 2, applicationName: 'planforge-migrate' });
await dataSource.initialize();
try {
  const applied = await dataSource.runMigrationsLocked();
  process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'schema is up to date\n');
} finally {
  await dataSource.destroy();
}
