/**
 * Build events (SSE), cancellation, per-target logs, priorities and submission
 * rate limits, against a real API on a port, real workers (in this process),
 * Redis, Postgres and S3.
 */
import { targetJobId, targetQueueName } from '../../libs/contracts/index.js';
import type { WorkerHandle } from '../../apps/worker/src/index.js';
import { QueueProbe, json, listObjectKeys, multipartBody, multipartHeaders, request, sql, startApi, submit, type ApiUnderTest } from '../api/api-test-kit.js';
import { cleanupTestConfig } from '../helpers/env.js';
import { eventually } from '../helpers/services.js';
import { openSse, sleep, slowModel, startTestWorker, tinyModel } from './ops-kit.js';

const TINY_PROFILE = { input: { min: [1, 3, 8, 8], opt: [1, 3, 8, 8], max: [2, 3, 8, 8] } };

describe('build events, cancellation, logs, priorities, rate limits', () => {
  let api: ApiUnderTest;
  let probe: QueueProbe;
  const workers: WorkerHandle[] = [];

  beforeAll(async () => {
    api = await startApi({ SUBMIT_RATE_LIMIT_BURST: '1000', SUBMIT_RATE_LIMIT_PER_MINUTE: '1000' });
    probe = new QueueProbe(api.config);
  });

  afterAll(async () => {
    for (const w of workers) await w.close().catch(() => undefined);
    await probe?.close();
    await api?.app.close();
    await cleanupTestConfig();
  });

  it('streams a build from snapshot to end: started on which worker, stages with percent, succeeded; logs are downloadable', async () => {
    const res = await submit(api, { spec: { model: 'events-tiny', targets: ['sm_80'], precision: 'fp32', profiles: TINY_PROFILE }, model: tinyModel() });
    expect(res.statusCode).toBe(202);
    const { buildId } = json(res);
    // The submission's request id travels with the job: the worker's log lines of the job carry it.
    const job = await probe.queue(targetQueueName('sm_80', api.config.queuePrefix)).getJob(targetJobId(buildId, 'sm_80'));
    expect(job?.data.requestId).toBe(res.headers['x-request-id']);
    const sse = await openSse(api.baseUrl, `/v1/builds/${buildId}/events`, api.apiKey);
    expect(sse.status).toBe(200);
    expect(sse.headers['content-type']).toMatch(/^text\/event-stream/);
    const snapshot = await sse.waitFor('snapshot', (e) => e.event === 'snapshot');
    expect(snapshot.data).toMatchObject({ buildId, status: 'queued', targets: [{ target: 'sm_80', status: 'queued' }] });

    // The worker starts after the subscriber: every event of the run reaches it.
    workers.push(await startTestWorker(api.config, ['sm_80'], 'events-worker-1'));
    const started = await sse.waitFor('started', (e) => e.event === 'target' && e.data.kind === 'started');
    expect(started.data).toMatchObject({ buildId, target: 'sm_80', status: 'running', workerId: 'events-worker-1', gpu: 'cross', attempt: 1 });
    await sse.waitFor('end', (e) => e.event === 'end', 90_000);
    await sse.closed;

    const kinds = sse.events.filter((e) => e.event === 'target').map((e) => `${e.data.kind}:${e.data.stage}`);
    const stages = sse.events.filter((e) => e.event === 'target' && e.data.kind === 'progress').map((e) => e.data.stage as string);
    expect(stages).toEqual(expect.arrayContaining(['download', 'verify', 'upload', 'done']));
    // (Optimizer stages of a model this small are over before they are reported; the VGG-19 test below sees them.)
    for (const e of sse.events.filter((x) => x.event === 'target' && x.data.kind === 'progress')) {
      expect(e.data.percent).toBeGreaterThanOrEqual(0);
      expect(e.data.percent).toBeLessThanOrEqual(100);
    }
    expect(kinds[kinds.length - 1]).toBe('succeeded:done');
    expect(sse.events.find((e) => e.event === 'build')?.data).toMatchObject({ buildId, status: 'succeeded' });
    const last = sse.events.filter((e) => e.event === 'snapshot').pop();
    expect(last?.data).toMatchObject({ status: 'succeeded', targets: [{ target: 'sm_80', status: 'succeeded', progress: 100 }] });
    expect(sse.events[sse.events.length - 1]).toMatchObject({ event: 'end', data: { reason: 'finished' } });

    // A late subscriber gets the final state at once, and the stream ends.
    const late = await openSse(api.baseUrl, `/v1/builds/${buildId}/events`, api.apiKey);
    await late.closed;
    expect(late.events.map((e) => e.event)).toEqual(['snapshot', 'end']);
    expect(late.events[0].data.status).toBe('succeeded');

    const log = await eventually('the build log', async () => {
      const r = await request(api, { url: `/v1/builds/${buildId}/logs/sm_80` });
      return r.statusCode === 200 && r.body.includes('result: succeeded') ? r : undefined;
    });
    expect(log.headers['content-type']).toMatch(/^text\/plain/);
    expect(log.body).toMatch(/=== attempt 1 of job .* on worker events-worker-1/);
    expect(log.body).toContain('target build started');
    expect(log.body).toContain('stage verify');
    expect(log.body).toContain('target build succeeded');
    expect((await request(api, { url: `/v1/builds/${buildId}/logs/sm_90` })).statusCode).toBe(404);
    expect((await request(api, { url: `/v1/builds/${buildId}/logs/bogus` })).statusCode).toBe(400);
    expect((await request(api, { url: `/v1/builds/${buildId}/events`, anonymous: true })).statusCode).toBe(401);
    expect((await request(api, { url: `/v1/builds/00000000-0000-4000-8000-000000000000/events` })).statusCode).toBe(404);
  });

  it('cancels a running native build within seconds; nothing is stored for it', async () => {
    const res = await submit(api, { spec: { model: 'cancel-slow', targets: ['sm_90'], precision: 'fp32' }, model: slowModel() });
    expect(res.statusCode).toBe(202);
    const { buildId, version } = json(res);
    const sse = await openSse(api.baseUrl, `/v1/builds/${buildId}/events`, api.apiKey);
    workers.push(await startTestWorker(api.config, ['sm_90'], 'cancel-worker'));
    // Inside the optimizer: past download, before verification.
    const optimizing = await sse.waitFor(
      'an optimizer stage',
      (e) => e.event === 'target' && e.data.kind === 'progress' && !['download', 'starting'].includes(e.data.stage),
      90_000,
    );
    expect(optimizing.data).toMatchObject({ status: 'running', workerId: 'cancel-worker', gpu: 'cross' });
    expect(typeof optimizing.data.percent).toBe('number');
    const plansBefore = (await listObjectKeys(api.config)).filter((k) => k.startsWith('plans/'));

    const cancelledAt = Date.now();
    const del = await request(api, { method: 'DELETE', url: `/v1/builds/${buildId}`, headers: { 'x-cancel-reason': 'wrong model' } });
    expect(del.statusCode).toBe(200);
    expect(json(del)).toMatchObject({ buildId, status: 'cancelled', cancelledTargets: ['sm_90'], interruptedTargets: ['sm_90'] });
    expect(json(del).build.status).toBe('cancelled');

    await sse.waitFor('build cancelled', (e) => e.event === 'build' && e.data.status === 'cancelled');
    await sse.closed;
    // The worker's job ends within seconds (the optimizer checks its AbortSignal).
    const queue = probe.queue(targetQueueName('sm_90', api.config.queuePrefix));
    await eventually(
      'the job to stop',
      async () => (await queue.getJob(targetJobId(buildId, 'sm_90')))?.getState().then((s) => s === 'failed'),
      { timeoutMs: 20_000, intervalMs: 100 },
    );
    const failed = (await queue.getJob(targetJobId(buildId, 'sm_90')))!;
    expect(Date.now() - cancelledAt).toBeLessThan(15_000);
    expect(failed.failedReason).toMatch(/^E_CANCELLED/);
    expect(failed.attemptsMade).toBe(1); // not retried

    const [target] = await sql(api.config, `SELECT status, error_code FROM build_targets WHERE build_id = $1`, [buildId]);
    expect(target).toEqual({ status: 'cancelled', error_code: 'E_CANCELLED' });
    const [versionRow] = await sql(api.config, `SELECT v.status FROM model_versions v JOIN models m ON m.id = v.model_id WHERE m.name = 'cancel-slow' AND v.version = $1`, [
      version,
    ]);
    expect(versionRow.status).toBe('cancelled');
    await sleep(1500);
    expect(await sql(api.config, `SELECT p.id FROM plans p JOIN builds b ON b.model_version_id = p.model_version_id WHERE b.id = $1`, [buildId])).toEqual([]);
    const keys = await listObjectKeys(api.config);
    expect(keys.filter((k) => k.startsWith('plans/'))).toEqual(plansBefore);
    expect(keys.filter((k) => k.startsWith('staging/'))).toEqual([]);
    const log = await eventually('the cancelled log', async () => {
      const r = await request(api, { url: `/v1/builds/${buildId}/logs/sm_90` });
      return r.statusCode === 200 && r.body.includes('result: failed') ? r.body : undefined;
    });
    expect(log).toMatch(/E_CANCELLED|cancelled/);

    const again = await request(api, { method: 'DELETE', url: `/v1/builds/${buildId}` });
    expect(again.statusCode).toBe(409);
    expect(json(again).code).toBe('E_BUILD_FINISHED');
  });

  it('cancels a queued build: its waiting jobs leave the queues', async () => {
    const res = await submit(api, {
      spec: { model: 'cancel-queued', targets: ['sm_86', 'sm_87'], precision: 'fp32', profiles: TINY_PROFILE },
      model: tinyModel(),
    });
    const { buildId } = json(res);
    const q86 = probe.queue(targetQueueName('sm_86', api.config.queuePrefix));
    expect(await (await q86.getJob(targetJobId(buildId, 'sm_86')))?.getState()).toBe('prioritized');
    const del = await request(api, { method: 'DELETE', url: `/v1/builds/${buildId}` });
    expect(del.statusCode).toBe(200);
    expect(json(del)).toMatchObject({ status: 'cancelled', cancelledTargets: ['sm_86', 'sm_87'], interruptedTargets: [] });
    expect(await q86.getJob(targetJobId(buildId, 'sm_86'))).toBeUndefined();
    const status = json(await request(api, { url: `/v1/builds/${buildId}` }));
    expect(status.status).toBe('cancelled');
    expect(status.targets.map((t: { status: string }) => t.status)).toEqual(['cancelled', 'cancelled']);
    const list = json(await request(api, { url: '/v1/builds?state=finished&model=cancel-queued' }));
    expect(list.builds).toEqual([expect.objectContaining({ buildId, status: 'cancelled', targets: ['sm_86', 'sm_87'] })]);
    expect((await request(api, { method: 'DELETE', url: '/v1/builds/not-a-uuid' })).statusCode).toBe(400);
    expect((await request(api, { method: 'DELETE', url: '/v1/builds/00000000-0000-4000-8000-000000000000' })).statusCode).toBe(404);
  });

  it('runs release builds before branch builds queued earlier', async () => {
    const spec = (name: string, priority?: string) => ({ model: name, targets: ['sm_87'], precision: 'fp32', profiles: TINY_PROFILE, ...(priority && { priority }) });
    const b1 = json(await submit(api, { spec: spec('prio-branch-1', 'branch'), model: tinyModel() })).buildId;
    const b2 = json(await submit(api, { spec: spec('prio-branch-2'), model: tinyModel() })).buildId;
    // The header wins over the spec.
    const rel = json(
      await request(api, {
        method: 'POST',
        url: '/v1/builds',
        headers: { ...multipartHeaders(), priority: 'release' },
        payload: multipartBody([
          { name: 'spec', value: JSON.stringify(spec('prio-release')) },
          { name: 'model', value: tinyModel(), filename: 'model.onnx' },
        ]),
      }),
    ).buildId;
    const bad = await request(api, {
      method: 'POST',
      url: '/v1/builds',
      headers: { ...multipartHeaders(), priority: 'urgent' },
      payload: multipartBody([{ name: 'spec', value: JSON.stringify(spec('prio-bad')) }]),
    });
    expect(bad.statusCode).toBe(400);
    expect(json(bad).errors[0].field).toBe('priority');

    workers.push(await startTestWorker(api.config, ['sm_87'], 'prio-worker'));
    const started = await eventually(
      'all three builds to finish',
      async () => {
        const rows = await sql<{ build_id: string; started_at: Date; status: string }>(
          api.config,
          `SELECT build_id, started_at, status FROM build_targets WHERE build_id = ANY($1::uuid[])`,
          [[b1, b2, rel]],
        );
        return rows.every((r) => r.status === 'succeeded') ? rows : undefined;
      },
      { timeoutMs: 120_000 },
    );
    const order = [...started].sort((a, b) => a.started_at.getTime() - b.started_at.getTime()).map((r) => r.build_id);
    expect(order[0]).toBe(rel);
    expect(order.slice(1)).toEqual([b1, b2]);
    const list = json(await request(api, { url: '/v1/builds?model=prio-release' }));
    expect(list.builds[0].priority).toBe('release');
  });

  it('limits submissions per API key with a token bucket: 429 with Retry-After', async () => {
    const limited = await startApi({ SUBMIT_RATE_LIMIT_BURST: '2', SUBMIT_RATE_LIMIT_PER_MINUTE: '6' });
    try {
      const spec = { model: 'rate-limited', targets: ['sm_80'], precision: 'fp32', profiles: TINY_PROFILE };
      expect((await submit(limited, { spec, model: tinyModel() })).statusCode).toBe(202);
      const second = await submit(limited, { spec, model: tinyModel() });
      expect(second.statusCode).toBe(202);
      expect(second.headers['x-ratelimit-remaining']).toBe('0');
      const third = await submit(limited, { spec, model: tinyModel() });
      expect(third.statusCode).toBe(429);
      expect(json(third).code).toBe('E_RATE_LIMITED');
      const retryAfter = Number(third.headers['retry-after']);
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(10);
      // Other routes are not limited.
      expect((await request(limited, { url: '/v1/models' })).statusCode).toBe(200);
    } finally {
      await limited.app.close();
    }
  });
});
