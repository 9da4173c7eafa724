/**
 * Creates an API key directly in the registry and prints it once:
 *   node dist/apps/api/src/cli/create-admin-key.js --name ops-alice [--role admin|submitter|viewer]
 * Uses DATABASE_URL (libs/config); applies pending migrations first. Exit 64 on bad
 * arguments, 78 on bad configuration.
 */
import 'reflect-metadata';
import { parseArgs } from 'node:util';
import { ConfigError, loadApiConfig } from '../../../../libs/config/index.js';
import { API_KEY_ROLES, ApiKeyRepository, AuditLogRepository, createDataSource, isApiKeyRole } from '../../../../libs/registry/index.js';

const USAGE = `usage: create-admin-key --name <name> [--role ${API_KEY_ROLES.join('|')}]`;

async function main(): Promise<number> {
  let values: { name?: string; role?: string; help?: boolean };
  try {
    ({ values } = parseArgs({ options: { name: { type: 'string' }, role: { type: 'string', default: 'admin' }, help: { type: 'boolean' } } }));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return 64;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const name = values.name?.trim();
  if (!name || name.length > 100) {
    process.stderr.write(`--name is required (1-100 characters)\n${USAGE}\n`);
    return 64;
  }
  if (!isApiKeyRole(values.role)) {
    process.stderr.write(`--role must be one of ${API_KEY_ROLES.join(', ')}\n`);
    return 64;
  }
  let config;
  try {
    config = loadApiConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const issue of err.issues) process.stderr.write(`${issue.variable}: ${issue.message}\n`);
      return 78;
    }
    throw err;
  }
  const ds = createDataSource(config.databaseUrl, { applicationName: 'planforge-create-admin-key', poolSize: 2 });
  await ds.initialize();
  try {
    const { record, key } = await new ApiKeyRepository(ds).create({ name, role: values.role, createdBy: 'cli' });
    await new AuditLogRepository(ds).record({
      actorKeyId: null,
      actor: 'cli',
      action: 'key.create',
      subject: `key ${record.id}`,
      details: { name: record.name, role: record.role, keyPrefix: record.keyPrefix },
    });
    process.stderr.write(`created ${record.role} key "${record.name}" (id ${record.id}); it is shown once:\n`);
    process.stdout.write(`${key}\n`);
    return 0;
  } finally {
    await ds.destroy();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`create-admin-key failed: ${(err as Error)?.message ?? String(err)}\n`);
    process.exit(1);
  },
);
