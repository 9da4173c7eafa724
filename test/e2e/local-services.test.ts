/**
 * scripts/services.js, which `npm run farm` and `npm test` share: each embedded
 * service starts, answers, keeps its data across a clean stop/start (the farm's
 * promise for .farm/) and leaves no process behind.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { Redis } from 'ioredis';
import { HeadBucketCommand, PutObjectCommand, GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { REPO_ROOT } from '../helpers/services.js';

interface Service {
  name: string;
  port: number;
  child: { pid?: number; exitCode: number | null; signalCode: string | null };
  stop(): Promise<void>;
  [key: string]: any;
}
interface ServicesModule {
  freePort(): Promise<number>;
  startRedis(o: { dir: string; port: number; persistent?: boolean }): Promise<Service>;
  startPostgres(o: { dataDir: string; port: number; fast?: boolean; app?: { user: string; password: string; database: string } }): Promise<Service>;
  startS3rver(o: { dir: string; port: number; bucket?: string }): Promise<Service>;
  removeDir(dir: string): void;
}

const alive = (pid: number | undefined) => {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('scripts/services.js', () => {
  let svc: ServicesModule;
  let dir: string;
  const running: Service[] = [];

  beforeAll(async () => {
    svc = (await import(pathToFileURL(join(REPO_ROOT, 'scripts', 'services.js')).href)) as ServicesModule;
    dir = mkdtempSync(join(tmpdir(), 'planforge-services-'));
    // As root, Postgres runs as user postgres, which must be able to enter the directory.
    chmodSync(dir, 0o755);
  });

  afterAll(async () => {
    for (const s of running) await s.stop().catch(() => undefined);
    svc.removeDir(dir);
  });

  async function start<T extends Service>(p: Promise<T>): Promise<T> {
    const s = await p;
    running.push(s);
    return s;
  }

  async function stop(s: Service): Promise<void> {
    await s.stop();
    expect(s.child.exitCode !== null || s.child.signalCode !== null).toBe(true);
    expect(alive(s.child.pid)).toBe(false);
  }

  it('Redis with AOF keeps its keys across a restart', async () => {
    const first = await start(svc.startRedis({ dir: join(dir, 'redis'), port: await svc.freePort(), persistent: true }));
    const client = new Redis(first.url as string);
    await client.set('planforge:test', 'kept');
    client.disconnect();
    await stop(first);

    const second = await start(svc.startRedis({ dir: join(dir, 'redis'), port: await svc.freePort(), persistent: true }));
    const again = new Redis(second.url as string);
    try {
      expect(await again.get('planforge:test')).toBe('kept');
      expect(await again.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
    } finally {
      again.disconnect();
    }
    await stop(second);
  });

  it('Postgres creates the app role and database once and keeps data across a restart', async () => {
    const app = { user: 'planforge', password: 'planforge', database: 'planforge' };
    const dataDir = join(dir, 'pg', 'data');
    const first = await start(svc.startPostgres({ dataDir, port: await svc.freePort(), app }));
    expect(first.url).toMatch(/^postgres:\/\/planforge:planforge@127\.0\.0\.1:\d+\/planforge$/);
    const c1 = new pg.Client({ connectionString: first.url as string });
    await c1.connect();
    await c1.query('CREATE TABLE kept (v text)');
    await c1.query("INSERT INTO kept VALUES ('yes')");
    await c1.end();
    await stop(first);

    // Second start: initdb and role/database creation are skipped, the data is there.
    const second = await start(svc.startPostgres({ dataDir, port: await svc.freePort(), app }));
    const c2 = new pg.Client({ connectionString: second.url as string });
    await c2.connect();
    try {
      expect((await c2.query('SELECT v FROM kept')).rows).toEqual([{ v: 'yes' }]);
    } finally {
      await c2.end();
    }
    await stop(second);
  });

  it('s3rver serves the configured bucket and keeps objects across a restart', async () => {
    const client = (endpoint: string) =>
      new S3Client({
        endpoint,
        region: 'us-east-1',
        forcePathStyle: true,
        credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
      });
    const first = await start(svc.startS3rver({ dir: join(dir, 's3'), port: await svc.freePort(), bucket: 'farm-bucket' }));
    const s1 = client(first.endpoint as string);
    await s1.send(new HeadBucketCommand({ Bucket: 'farm-bucket' }));
    await s1.send(new PutObjectCommand({ Bucket: 'farm-bucket', Key: 'a/b.txt', Body: 'kept' }));
    s1.destroy();
    await stop(first);

    const second = await start(svc.startS3rver({ dir: join(dir, 's3'), port: await svc.freePort(), bucket: 'farm-bucket' }));
    const s2 = client(second.endpoint as string);
    try {
      const obj = await s2.send(new GetObjectCommand({ Bucket: 'farm-bucket', Key: 'a/b.txt' }));
      expect(await obj.Body?.transformToString()).toBe('kept');
    } finally {
      s2.destroy();
    }
    await stop(second);
  });

  it('reports a service that cannot start with the tail of its log', async () => {
    const port = await svc.freePort();
    const blocker = await start(svc.startRedis({ dir: join(dir, 'redis-a'), port }));
    // Same port again: the second redis-server exits at once.
    await expect(svc.startRedis({ dir: join(dir, 'redis-b'), port })).rejects.toThrow(/redis-server exited with code 1 before it was ready[\s\S]*redis\.log[\s\S]*(Address already in use|bind)/i);
    await stop(blocker);
  });
});
