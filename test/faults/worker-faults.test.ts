/**
 * Faults with real processes and nothing mocked: a worker SIGKILLed or SIGTERMed
 * mid-build, and two API instances with three workers taking 30 concurrent builds.
 * Invariants: every build completes, exactly one plan row and one S3 object per target,
 * versions gap-free and unique.
 */
import { createHash } from 'node:crypto';
import { cleanupTestConfig, testConfig } from '../helpers/env.js';
import { eventually, type AppProcess } from '../helpers/services.js';
import type { AppConfig } from '../../libs/config/index.js';
import { json, listObjectKeys, sql } from '../api/api-test-kit.js';
import { adminKey, slowConvNet, startApiProcess, startFaultWorker, submitBuild, targetRows, waitForBuild } from './faults-kit.js';

/** Per test: real builds on a loaded 2-core machine. */
const TEST_MS = 300_000;

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('worker faults', () => {
  const procs: AppProcess[] = [];
  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop('SIGKILL', 2000)));
    await cleanupTestConfig();
  });

  async function farm(): Promise<{ config: AppConfig; api: Awaited<ReturnType<typeof startApiProcess>> }> {
    const config = await testConfig({ WORKER_TARGETS: 'sm_90' });
    const api = await startApiProcess(config, adminKey());
    procs.push(api);
    return { config, api };
  }

  /** Waits until the target runs on `worker` (its status and worker_id in the registry). */
  async function runningOn(config: AppConfig, buildId: string, workerId: string): Promise<void> {
    await eventually(`the build to run on ${workerId}`, async () => {
      const [row] = await targetRows(config, buildId);
      if (row?.status === 'succeeded') throw new Error('the build finished before the fault could be injected: use a slower model');
      return row?.status === 'running' && row.worker_id === workerId;
    }, { timeoutMs: 60_000, intervalMs: 100 });
  }

  async function expectOnePlanPerTarget(config: AppConfig, buildId: string): Promise<void> {
    const [version] = await sql<{ id: string; status: string; completed_at: Date | null }>(
      config,
      'SELECT v.id, v.status, v.completed_at FROM model_versions v JOIN builds b ON b.model_version_id = v.id WHERE b.id = $1',
      [buildId],
    );
    expect(version).toMatchObject({ status: 'complete' });
    expect(version.completed_at).not.toBeNull();
    const plans = await sql<{ target: string; s3_key: string }>(config, 'SELECT target, s3_key FROM plans WHERE model_version_id = $1', [version.id]);
    expect(plans.map((p) => p.target)).toEqual(['sm_90']);
    const planObjects = (await listObjectKeys(config)).filter((k) => k.startsWith('plans/'));
    expect(planObjects).toEqual([plans[0].s3_key]);
  }

  it('SIGKILL mid-build: the job comes back (stalled-job recovery) and completes on another worker, once', async () => {
    const { config, api } = await farm();
    const first = startFaultWorker(config, 'doomed');
    procs.push(first);
    const model = slowConvNet({ layers: 8, channels: 32, size: 128, seed: 11 });
    const res = await submitBuild(api, 'killed', model, ['sm_90']);
    expect(res.statusCode).toBe(202);
    const { buildId } = json(res);
    await runningOn(config, buildId, 'doomed');
    await first.stop('SIGKILL');

    const second = startFaultWorker(config, 'rescuer');
    procs.push(second);
    expect(await waitForBuild(config, buildId, [first, second])).toBe('succeeded');
    const [row] = await targetRows(config, buildId);
    expect(row).toMatchObject({ status: 'succeeded', worker_id: 'rescuer' });
    await expectOnePlanPerTarget(config, buildId);
    const [version] = await sql<{ model_sha256: string }>(config, 'SELECT model_sha256 FROM model_versions');
    expect(version.model_sha256).toBe(sha256(model));
    await second.stop('SIGTERM');
  }, TEST_MS);

  it('SIGTERM mid-build: the worker finishes (or hands back) its job within the grace period; nothing is lost', async () => {
    const { config, api } = await farm();
    const worker = startFaultWorker(config, 'leaving');
    procs.push(worker);
    const res = await submitBuild(api, 'terminated', slowConvNet({ layers: 8, channels: 32, size: 128, seed: 12 }), ['sm_90']);
    expect(res.statusCode).toBe(202);
    const { buildId } = json(res);
    await runningOn(config, buildId, 'leaving');
    const stopped = await worker.stop('SIGTERM', 60_000);
    // A clean exit (0) within the grace period, not a kill.
    expect(stopped).toMatchObject({ code: 0, signal: null });
    const [afterStop] = await targetRows(config, buildId);
    // Either it finished the job before exiting, or the job is waiting for the next worker.
    expect(['succeeded', 'running', 'queued']).toContain(afterStop.status);

    const next = startFaultWorker(config, 'next');
    procs.push(next);
    expect(await waitForBuild(config, buildId, [worker, next])).toBe('succeeded');
    await expectOnePlanPerTarget(config, buildId);
    await next.stop('SIGTERM');
  }, TEST_MS);

  it('two API instances and three workers: 30 concurrent builds, no duplicate versions, no lost jobs', async () => {
    const config = await testConfig({ WORKER_TARGETS: 'sm_90' });
    const key = adminKey();
    const apis = await Promise.all([startApiProcess(config, key), startApiProcess(config, key)]);
    procs.push(...apis);
    const workers = ['w1', 'w2', 'w3'].map((id) => startFaultWorker(config, id));
    procs.push(...workers);

    const models = Array.from({ length: 30 }, (_, i) => slowConvNet({ layers: 1, channels: 4, size: 8, seed: 1000 + i }));
    const results = await Promise.all(models.map((m, i) => submitBuild(apis[i % 2], 'crowded', m, ['sm_90'])));
    for (const r of results) expect([r.statusCode, r.body.slice(0, 200)]).toEqual([202, expect.any(String)]);
    const submitted = results.map((r) => json(r));
    // Versions are gap-free and unique across both instances.
    expect(submitted.map((s) => s.version).sort((a, b) => a - b)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));

    for (const s of submitted) expect(await waitForBuild(config, s.buildId, [...apis, ...workers], 240_000)).toBe('succeeded');
    const [counts] = await sql<{ versions: number; complete: number; plans: number; builds: number }>(
      config,
      `SELECT (SELECT count(*) FROM model_versions)::int AS versions, (SELECT count(*) FROM model_versions WHERE status = 'complete')::int AS complete,
              (SELECT count(*) FROM plans)::int AS plans, (SELECT count(*) FROM builds WHERE status = 'succeeded')::int AS builds`,
    );
    expect(counts).toEqual({ versions: 30, complete: 30, plans: 30, builds: 30 });
    // Every version's model is the one submitted for it.
    const rows = await sql<{ version: number; model_sha256: string }>(config, 'SELECT version, model_sha256 FROM model_versions ORDER BY version');
    const byVersion = new Map(submitted.map((s, i) => [s.version as number, sha256(models[i])]));
    for (const r of rows) expect(r.model_sha256).toBe(byVersion.get(r.version));
    // The work was shared: more than one worker built plans.
    const workerIds = await sql<{ worker_id: string }>(config, 'SELECT DISTINCT worker_id FROM build_targets');
    expect(workerIds.length).toBeGreaterThan(1);
    await Promise.all(workers.map((w) => w.stop('SIGTERM', 30_000)));
  }, TEST_MS);
});
