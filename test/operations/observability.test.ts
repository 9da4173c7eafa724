/**
 * Observability: the worker registry (heartbeats; alive, lost, stopped), pools,
 * Prometheus /metrics (queues, workers, stage and target durations, failures by
 * code, cache ratio, API latency) and structured JSON logs with request and
 * build ids, over a real API, real workers, Redis, Postgres and S3.
 */
import { createApiApp } from '../../apps/api/src/api-app.js';
import { PinoNestLogger } from '../../apps/api/src/logging/pino-nest-logger.js';
import type { WorkerHandle } from '../../apps/worker/src/index.js';
import { json, request, startApi, submit, type ApiUnderTest } from '../api/api-test-kit.js';
import { cleanupTestConfig, testConfig } from '../helpers/env.js';
import { makeModel } from '../helpers/onnx-builder.js';
import { eventually, startWorkerProcess } from '../helpers/services.js';
import { startTestWorker, tinyModel } from './ops-kit.js';

const TINY_PROFILE = { input: { min: [1, 3, 8, 8], opt: [1, 3, 8, 8], max: [2, 3, 8, 8] } };

/** A model whose op the optimizer does not implement: the worker fails it with E_UNSUPPORTED_OP. */
function unsupportedModel(): Buffer {
  return makeModel({
    inputs: [{ name: 'x', dtype: 'float32', shape: [1, 4] }],
    outputs: [{ name: 'y', dtype: 'float32', shape: [1, 4] }],
    nodes: [{ op: 'Mystery', inputs: ['x'], outputs: ['y'] }],
  });
}

/** The value of one sample line of the exposition text; undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const [, labelText = '', value] = /^[^{ ]+(?:\{(.*)\})? (\S+)$/.exec(line) ?? [];
    if (value === undefined) continue;
    const have = Object.fromEntries([...labelText.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(value);
  }
  return undefined;
}

describe('observability', () => {
  let api: ApiUnderTest;
  let worker: WorkerHandle | undefined;

  beforeAll(async () => {
    // An explicit admin key keeps the config the one testConfig() made (worker processes need its environment).
    api = await startApi({ ADMIN_API_KEY: 'pf_test_observability_admin_key_0123' });
  });

  afterAll(async () => {
    await worker?.close().catch(() => undefined);
    await api?.app.close();
    await cleanupTestConfig();
  });

  it('lists workers with host, GPU or cross, pool, optimizer, current job and state; pools per target', async () => {
    worker = await startTestWorker(api.config, ['sm_80', 'sm_86'], 'obs-worker');
    const { workers } = json(await request(api, { url: '/v1/workers' }));
    expect(workers).toEqual([
      expect.objectContaining({
        workerId: 'obs-worker',
        state: 'alive',
        targets: ['sm_80', 'sm_86'],
        mode: 'cross',
        gpu: 'cross',
        sm: null,
        currentJobs: [],
        host: expect.any(String),
        optimizerVersion: expect.stringMatching(/\d/),
      }),
    ]);
    const { pools } = json(await request(api, { url: '/v1/pools' }));
    expect(pools.map((p: { target: string }) => p.target)).toEqual(['sm_80', 'sm_86', 'sm_87', 'sm_90']);
    expect(pools[0]).toMatchObject({ target: 'sm_80', sm: 80, workers: { alive: 1, busy: 0, idle: 1, lost: 0 }, queue: { waiting: 0, active: 0 } });
    expect(pools[2].workers.alive).toBe(0);
    expect((await request(api, { url: '/v1/workers', anonymous: true })).statusCode).toBe(401);
  });

  it('shows a worker that stops heartbeating as lost, and one that shut down as stopped', async () => {
    const proc = startWorkerProcess(api.config, { WORKER_TARGETS: 'sm_87', WORKER_ID: 'obs-doomed' });
    try {
      await eventually('the process worker to register', async () => {
        const { workers } = json(await request(api, { url: '/v1/workers' }));
        return workers.find((w: { workerId: string; state: string }) => w.workerId === 'obs-doomed' && w.state === 'alive');
      }, { timeoutMs: 30_000 });
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${proc.output()}`);
    }
    await proc.stop('SIGKILL');
    const lost = await eventually(
      'the killed worker to be lost',
      async () => {
        const { workers } = json(await request(api, { url: '/v1/workers' }));
        return workers.find((w: { workerId: string; state: string }) => w.workerId === 'obs-doomed' && w.state === 'lost');
      },
      { timeoutMs: 30_000, intervalMs: 1000 },
    );
    expect(lost.lastSeenSecondsAgo).toBeGreaterThan(15);
    const { pools } = json(await request(api, { url: '/v1/pools' }));
    expect(pools.find((p: { target: string }) => p.target === 'sm_87').workers).toMatchObject({ alive: 0, lost: 1 });

    const clean = await startTestWorker(api.config, ['sm_90'], 'obs-clean');
    await clean.close();
    const { workers } = json(await request(api, { url: '/v1/workers' }));
    expect(workers.find((w: { workerId: string }) => w.workerId === 'obs-clean')).toMatchObject({ state: 'stopped', currentJobs: [] });
  });

  it('exports Prometheus metrics: queues, workers, durations per target and stage, failures by code, cache ratio, API latency', async () => {
    const ok = json(await submit(api, { spec: { model: 'obs-ok', targets: ['sm_80'], precision: 'fp32', profiles: TINY_PROFILE }, model: tinyModel() }));
    const bad = json(await submit(api, { spec: { model: 'obs-bad', targets: ['sm_86'], precision: 'fp32' }, model: unsupportedModel() }));
    // Nobody serves sm_87 now: this one waits, and shows in the queue gauges.
    await submit(api, { spec: { model: 'obs-waiting', targets: ['sm_87'], precision: 'fp32', profiles: TINY_PROFILE }, model: tinyModel() });
    // The same model and spec again: served from the build cache once the first one finished.
    await eventually('both builds to finish', async () => {
      const a = json(await request(api, { url: `/v1/builds/${ok.buildId}` }));
      const b = json(await request(api, { url: `/v1/builds/${bad.buildId}` }));
      return a.status === 'succeeded' && b.status === 'failed';
    }, { timeoutMs: 90_000 });
    await submit(api, { spec: { model: 'obs-ok', targets: ['sm_80'], precision: 'fp32', profiles: TINY_PROFILE }, model: tinyModel() });

    const res = await request(api, { url: '/metrics', anonymous: true });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    const text = res.body;
    expect(sample(text, 'planforge_queue_depth', { target: 'sm_87', state: 'waiting' })).toBe(1);
    expect(sample(text, 'planforge_queue_depth', { target: 'sm_80', state: 'waiting' })).toBe(0);
    expect(sample(text, 'planforge_queue_oldest_waiting_seconds', { target: 'sm_87' })).toBeGreaterThan(0);
    expect(sample(text, 'planforge_workers', { target: 'sm_80', state: 'alive' })).toBe(1);
    expect(sample(text, 'planforge_workers', { target: 'sm_87', state: 'lost' })).toBe(1);
    expect(sample(text, 'planforge_build_target_duration_seconds_count', { target: 'sm_80', outcome: 'succeeded' })).toBe(1);
    expect(sample(text, 'planforge_build_target_duration_seconds_bucket', { target: 'sm_80', outcome: 'succeeded', le: '+Inf' })).toBe(1);
    expect(sample(text, 'planforge_build_stage_duration_seconds_count', { target: 'sm_80', stage: 'verify' })).toBe(1);
    expect(sample(text, 'planforge_build_stage_duration_seconds_count', { target: 'sm_80', stage: 'download' })).toBe(1);
    expect(sample(text, 'planforge_target_failures_total', { target: 'sm_86', code: 'E_UNSUPPORTED_OP' })).toBe(1);
    expect(sample(text, 'planforge_build_targets', { cache: 'hit' })).toBe(1);
    expect(sample(text, 'planforge_build_cache_hit_ratio')).toBeCloseTo(1 / 4, 5);
    expect(sample(text, 'planforge_api_request_duration_seconds_count', { method: 'POST', route: '/v1/builds', status: '202' })).toBe(4);
    expect(sample(text, 'planforge_api_request_duration_seconds_count', { method: 'GET', route: '/v1/builds/:id', status: '200' })).toBeGreaterThan(0);
    expect(text).toContain('# TYPE planforge_build_stage_duration_seconds histogram');
    expect(text).toContain('planforge_api_process_cpu_seconds_total');
  });

  it('writes JSON log lines carrying the request id and the build id', async () => {
    const lines: Record<string, unknown>[] = [];
    const config = await testConfig({ ADMIN_API_KEY: 'pf_test_logging_admin_key_0123456789' });
    const app = await createApiApp(config, { logger: new PinoNestLogger('info', { write: (line: string) => void lines.push(JSON.parse(line)) }) });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const port = (app.getHttpServer().address() as { port: number }).port;
    const local = { baseUrl: `http://127.0.0.1:${port}`, apiKey: 'pf_test_logging_admin_key_0123456789' };
    try {
      const res = await submit(local, { spec: { model: 'obs-logs', targets: ['sm_80'], precision: 'fp32', profiles: TINY_PROFILE }, model: tinyModel() });
      const { buildId } = json(res);
      const requestId = res.headers['x-request-id'];
      const submitted = lines.find((l) => String(l.msg).startsWith(`build ${buildId}:`));
      expect(submitted).toMatchObject({ level: 'info', service: 'planforge-api', context: 'BuildService', requestId });
      expect(typeof submitted?.time).toBe('string');
      const del = await request(local, { method: 'DELETE', url: `/v1/builds/${buildId}`, headers: { 'x-request-id': 'cancel-req-42' } });
      expect(del.statusCode).toBe(200);
      expect(lines.find((l) => String(l.msg).startsWith(`build ${buildId} cancelled`))).toMatchObject({ requestId: 'cancel-req-42', buildId, context: 'BuildControl' });
    } finally {
      await app.close();
    }
  });
});
