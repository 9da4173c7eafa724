/**
 * Per-test isolation on top of the services that scripts/test.js starts once per run:
 * every testConfig() call gets its own Postgres database, S3 bucket, BullMQ prefix,
 * queue prefix and work dir, so test files running in parallel never see each other.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { loadConfig, type AppConfig } from '../../libs/config/index.js';

export type EnvOverrides = Record<string, string | undefined>;

interface Provisioned {
  database: string;
  workDir: string;
  env: Record<string, string>;
}

const provisioned = new Map<AppConfig, Provisioned>();

function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run the tests with \`npm test\` (scripts/test.js starts Redis, Postgres and S3 and exports it)`);
  }
  return value;
}

function randomId(bytes = 6): string {
  return randomBytes(bytes).toString('hex');
}

/** The admin URL with its database replaced: the new database lives on the same server. */
function databaseUrlFor(adminUrl: string, database: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

async function createDatabase(adminUrl: string, database: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    // The name is generated here ([a-z0-9_] only), so quoting it is enough.
    await client.query(`CREATE DATABASE "${database}"`);
  } finally {
    await client.end();
  }
}

async function dropDatabase(adminUrl: string, database: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    // FORCE: a test that forgot to close its pool must not make cleanup fail.
    await client.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
  } finally {
    await client.end();
  }
}

async function createBucket(env: Record<string, string>): Promise<void> {
  const client = new S3Client({
    endpoint: env.S3_ENDPOINT,
    region: env.S3_REGION ?? 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: env.S3_ACCESS_KEY_ID ?? '', secretAccessKey: env.S3_SECRET_ACCESS_KEY ?? '' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  try {
    await client.send(new CreateBucketCommand({ Bucket: env.S3_BUCKET }));
  } finally {
    client.destroy();
  }
}

/**
 * Environment variables (in the libs/config vocabulary) of a fresh, isolated farm
 * on the shared test services. Useful for child processes (workers) too.
 */
async function provisionEnv(overrides: EnvOverrides): Promise<Provisioned> {
  const adminUrl = requireEnv('PLANFORGE_TEST_PG_ADMIN_URL');
  const id = randomId();
  const database = `t_${id}`;
  const workDir = mkdtempSync(join(tmpdir(), `planforge-test-${id}-`));
  const env: Record<string, string> = {
    REDIS_URL: requireEnv('REDIS_URL'),
    QUEUE_PREFIX: `build${id}`,
    BULLMQ_PREFIX: `pf${id}`,
    DATABASE_URL: databaseUrlFor(adminUrl, database),
    S3_ENDPOINT: requireEnv('S3_ENDPOINT'),
    S3_REGION: process.env.S3_REGION ?? 'us-east-1',
    S3_BUCKET: `t-${id}`,
    S3_ACCESS_KEY_ID: requireEnv('S3_ACCESS_KEY_ID'),
    S3_SECRET_ACCESS_KEY: requireEnv('S3_SECRET_ACCESS_KEY'),
    S3_FORCE_PATH_STYLE: 'true',
    API_HOST: '127.0.0.1',
    API_PORT: '0',
    WORK_DIR: workDir,
    WORKER_TARGETS: 'sm_80,sm_86,sm_87,sm_90',
    WORKER_MODE: 'cross',
    WORKER_CONCURRENCY: '1',
    WORKER_ID: `test-${id}`,
  };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  await createDatabase(adminUrl, database);
  try {
    await createBucket(env);
  } catch (err) {
    await dropDatabase(adminUrl, database).catch(() => undefined);
    throw err;
  }
  return { database, workDir, env };
}

/**
 * An AppConfig for the started test services with a fresh database, bucket,
 * queue/BullMQ prefix and work dir. `overrides` are environment variables
 * (e.g. `{ WORKER_TARGETS: 'sm_90' }`); `undefined` removes one.
 * Call cleanupTestConfig() in afterAll.
 */
export async function testConfig(overrides: EnvOverrides = {}): Promise<AppConfig> {
  const prov = await provisionEnv(overrides);
  let config: AppConfig;
  try {
    config = loadConfig(prov.env);
  } catch (err) {
    await releaseProvisioned(prov);
    throw err;
  }
  provisioned.set(config, prov);
  return config;
}

/**
 * The environment variables a config was made from, for starting child
 * processes (e.g. `node dist/apps/worker/src/main.js`) on the same isolated farm.
 * `overrides` change single variables (e.g. WORKER_TARGETS).
 */
export function testConfigEnv(config: AppConfig, overrides: EnvOverrides = {}): Record<string, string> {
  const prov = provisioned.get(config);
  if (!prov) throw new Error('testConfigEnv: this config was not made by testConfig() (or was already cleaned up)');
  const env = { ...prov.env };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

async function releaseProvisioned(prov: Provisioned): Promise<void> {
  rmSync(prov.workDir, { recursive: true, force: true });
  await dropDatabase(requireEnv('PLANFORGE_TEST_PG_ADMIN_URL'), prov.database);
}

/**
 * Drops the database(s) and work dir(s) of one config, or of every config made
 * in this test file when called without an argument. Idempotent. Buckets stay:
 * they live in the throwaway s3rver directory of the run.
 */
export async function cleanupTestConfig(config?: AppConfig): Promise<void> {
  const targets = config ? [config] : [...provisioned.keys()];
  for (const cfg of targets) {
    const prov = provisioned.get(cfg);
    if (!prov) continue;
    provisioned.delete(cfg);
    await releaseProvisioned(prov);
  }
}

/** Alias named in the contract. */
export const dropTestDatabase = cleanupTestConfig;
