/**
 * The isolation every other test relies on: each testConfig() is its own database,
 * bucket, queue namespace and work dir on the services scripts/test.js started.
 */
import { existsSync } from 'node:fs';
import pg from 'pg';
import { HeadBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { cleanupTestConfig, testConfig, testConfigEnv } from '../helpers/env.js';
import type { AppConfig } from '../../libs/config/index.js';

async function query(url: string, sql: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(sql);
  } finally {
    await client.end();
  }
}

function s3Client(config: AppConfig): S3Client {
  return new S3Client({
    endpoint: config.s3.endpoint,
    region: config.s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: config.s3.accessKeyId ?? '', secretAccessKey: config.s3.secretAccessKey ?? '' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

describe('testConfig', () => {
  afterAll(() => cleanupTestConfig());

  it('gives every call its own database, bucket, prefixes and work dir', async () => {
    const [a, b] = await Promise.all([testConfig(), testConfig()]);
    expect(a.databaseUrl).not.toEqual(b.databaseUrl);
    expect(a.s3.bucket).not.toEqual(b.s3.bucket);
    expect(a.queuePrefix).not.toEqual(b.queuePrefix);
    expect(a.bullPrefix).not.toEqual(b.bullPrefix);
    expect(a.workDir).not.toEqual(b.workDir);
    expect(a.redisUrl).toEqual(process.env.REDIS_URL);

    // Each database exists and is empty (no tables until the registry migrates it).
    for (const cfg of [a, b]) {
      const tables = await query(cfg.databaseUrl, "SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'");
      expect(tables.rows[0].n).toBe(0);
      const s3 = s3Client(cfg);
      try {
        await expect(s3.send(new HeadBucketCommand({ Bucket: cfg.s3.bucket }))).resolves.toBeDefined();
      } finally {
        s3.destroy();
      }
      expect(existsSync(cfg.workDir)).toBe(true);
    }
  });

  it('applies environment overrides through libs/config', async () => {
    const cfg = await testConfig({ WORKER_TARGETS: 'ampere', WORKER_CONCURRENCY: '3' });
    expect(cfg.worker.targets).toEqual(['sm_80', 'sm_86']);
    expect(cfg.worker.concurrency).toBe(3);
    expect(testConfigEnv(cfg, { WORKER_TARGETS: 'sm_90' })).toMatchObject({
      WORKER_TARGETS: 'sm_90',
      DATABASE_URL: cfg.databaseUrl,
      S3_BUCKET: cfg.s3.bucket,
      BULLMQ_PREFIX: cfg.bullPrefix,
    });
  });

  it('rejects an invalid override with the variable named', async () => {
    await expect(testConfig({ WORKER_TARGETS: 'sm_75' })).rejects.toThrow(/WORKER_TARGETS/);
  });

  it('drops the database and work dir on cleanup', async () => {
    const cfg = await testConfig();
    const name = new URL(cfg.databaseUrl).pathname.slice(1);
    await cleanupTestConfig(cfg);
    const admin = process.env.PLANFORGE_TEST_PG_ADMIN_URL as string;
    const left = await query(admin, `SELECT 1 FROM pg_database WHERE datname = '${name}'`);
    expect(left.rowCount).toBe(0);
    expect(existsSync(cfg.workDir)).toBe(false);
    await expect(cleanupTestConfig(cfg)).resolves.toBeUndefined();
  });
});
