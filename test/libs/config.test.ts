import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadApiConfig, loadConfig, loadWorkerConfig } from '../../libs/config/index.js';

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('has working defaults for an empty environment', () => {
    const c = loadConfig({});
    expect(c.redisUrl).toBe('redis://127.0.0.1:6379');
    expect(c.queuePrefix).toBe('build');
    expect(c.bullPrefix).toBe('planforge');
    expect(c.databaseUrl).toBe('postgres://planforge:planforge@127.0.0.1:5432/planforge');
    expect(c.s3).toEqual({ endpoint: undefined, region: 'us-east-1', bucket: 'planforge', accessKeyId: undefined, secretAccessKey: undefined, forcePathStyle: true });
    expect(c.api).toEqual({ host: '0.0.0.0', port: 8080, maxUploadBytes: 8 * 1024 ** 3, publicUrl: undefined });
    expect(c.workDir).toBe(path.join(os.tmpdir(), 'planforge'));
    expect(c.worker.targets).toEqual(['sm_80', 'sm_86', 'sm_87', 'sm_90']);
    expect(c.worker.mode).toBe('cross');
    expect(c.worker.concurrency).toBe(1);
    expect(c.worker.id).toBe(`${os.hostname()}-${process.pid}`);
    expect(c.worker.modelCacheBytes).toBe(20 * 1024 ** 3);
  });

  it('reads every variable', () => {
    const c = loadConfig({
      REDIS_URL: 'rediss://r.example:6380/2',
      QUEUE_PREFIX: 'q1',
      BULLMQ_PREFIX: 'b1',
      DATABASE_URL: 'postgresql://u:p@db:5432/x',
      S3_ENDPOINT: 'http://127.0.0.1:9000',
      S3_REGION: 'eu-west-1',
      S3_BUCKET: 'plans-bucket',
      S3_ACCESS_KEY_ID: 'AK',
      S3_SECRET_ACCESS_KEY: 'SK',
      S3_FORCE_PATH_STYLE: 'false',
      API_HOST: '127.0.0.1',
      API_PORT: '0',
      MAX_UPLOAD_BYTES: '512MiB',
      PUBLIC_URL: 'https://farm.example/',
      WORK_DIR: '/var/tmp/pf',
      WORKER_TARGETS: ' hopper, ampere ,sm_86',
      WORKER_MODE: 'gpu',
      WORKER_CONCURRENCY: '2',
      WORKER_ID: 'gpu-3',
      WORKER_MODEL_CACHE_BYTES: '1.5GB',
    });
    expect(c.redisUrl).toBe('rediss://r.example:6380/2');
    expect(c.s3).toEqual({ endpoint: 'http://127.0.0.1:9000', region: 'eu-west-1', bucket: 'plans-bucket', accessKeyId: 'AK', secretAccessKey: 'SK', forcePathStyle: false });
    expect(c.api).toEqual({ host: '127.0.0.1', port: 0, maxUploadBytes: 512 * 1024 ** 2, publicUrl: 'https://farm.example' });
    expect(c.workDir).toBe('/var/tmp/pf');
    expect(c.worker).toEqual({ targets: ['sm_80', 'sm_86', 'sm_90'], mode: 'gpu', concurrency: 2, id: 'gpu-3', modelCacheBytes: 1_500_000_000 });
  });

  it('treats empty variables as unset', () => {
    expect(loadConfig({ REDIS_URL: '', API_PORT: '  ' }).api.port).toBe(8080);
  });

  it.each([
    ['REDIS_URL', 'http://localhost:6379', /redis:\/\//],
    ['DATABASE_URL', 'mysql://x', /postgres:\/\//],
    ['API_PORT', '70000', /65535/],
    ['API_PORT', 'eighty', /integer/],
    ['MAX_UPLOAD_BYTES', '8 furlongs', /byte size/],
    ['S3_FORCE_PATH_STYLE', 'maybe', /true or false/],
    ['S3_BUCKET', 'Bad_Bucket', /bucket/],
    ['QUEUE_PREFIX', 'a:b', /A-Za-z0-9/],
    ['WORKER_TARGETS', 'sm_75', /unknown target "sm_75"/],
    ['WORKER_TARGETS', ' , ', /at least one target/],
    ['WORKER_MODE', 'cpu', /cross|gpu/],
    ['WORKER_CONCURRENCY', '0', />=|too small|1/],
  ])('rejects %s=%j naming the variable', (variable, value, message) => {
    const err = configError(() => loadConfig({ [variable]: value }));
    expect(err.variable).toBe(variable);
    expect(err.message).toContain(variable);
    expect(err.issues[0].message).toMatch(message);
  });

  it('reports every bad variable at once', () => {
    const err = configError(() => loadConfig({ API_PORT: '-1', WORKER_MODE: 'x' }));
    expect(err.issues.map((i) => i.variable).sort()).toEqual(['API_PORT', 'WORKER_MODE']);
  });

  it('needs both S3 keys or neither', () => {
    expect(configError(() => loadConfig({ S3_ACCESS_KEY_ID: 'AK' })).variable).toBe('S3_SECRET_ACCESS_KEY');
    expect(configError(() => loadConfig({ S3_SECRET_ACCESS_KEY: 'SK' })).variable).toBe('S3_ACCESS_KEY_ID');
  });

  it('splits into API and worker configs', () => {
    expect(loadApiConfig({})).not.toHaveProperty('worker');
    expect(loadApiConfig({}).api.port).toBe(8080);
    expect(loadWorkerConfig({})).not.toHaveProperty('api');
    expect(loadWorkerConfig({ WORKER_TARGETS: 'jetson' }).worker.targets).toEqual(['sm_87']);
  });
});
