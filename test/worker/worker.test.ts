import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { Readable } from 'node:stream';
import { FlowProducer, Queue, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { startWorker, JobRouter, WorkerStartError, type WorkerHandle } from '../../apps/worker/src/index.js';
import { ConfigError, type AppConfig } from '../../libs/config/index.js';
import {
  JOB_NAMES,
  finalizeJobOptions,
  finalizeQueueName,
  parseBuildSpec,
  planSpecHash,
  targetJobId,
  targetJobOptions,
  targetQueueName,
  type Target,
  type TargetJobData,
  type TargetJobResult,
} from '../../libs/contracts/index.js';
import { BuildRepository, PlanRepository, VersionRepository, createDataSource, type RegistryDataSource } from '../../libs/registry/index.js';
import { ObjectStorage, modelKey, sha256OfFile } from '../../libs/storage/index.js';
import { cleanupTestConfig, testConfig, testConfigEnv } from '../helpers/env.js';
import { tinyConvNet } from '../helpers/onnx-builder.js';

const sha256 = (buf: Buffer) => createHash('sha256').update(buf).digest('hex');
const REPO_ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..', '..');

async function waitFor<T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('worker', () => {
  let config: AppConfig;
  let ds: RegistryDataSource;
  let storage: ObjectStorage;
  let redis: Redis;
  let flows: FlowProducer;
  let worker: WorkerHandle;
  const queues = new Map<string, Queue>();
  const targets: Target[] = ['sm_80', 'sm_90'];
  const logLines: Record<string, unknown>[] = [];

  const versions = () => new VersionRepository(ds);
  const builds = () => new BuildRepository(ds);
  const plans = () => new PlanRepository(ds);

  function queue(name: string): Queue {
    let q = queues.get(name);
    if (!q) {
      q = new Queue(name, { connection: redis, prefix: config.bullPrefix });
      queues.set(name, q);
    }
    return q;
  }

  /** What the API does on a push: model to S3 (unless told not to), version + build rows, one flow. */
  async function push(modelName: string, model: Buffer, opts: { upload?: boolean; targets?: Target[] } = {}) {
    const spec = parseBuildSpec({ model: modelName, targets: opts.targets ?? targets });
    const modelSha256 = sha256(model);
    if (opts.upload !== false) await storage.uploadStream(modelKey(modelSha256), Readable.from([model]), { sha256: modelSha256 });
    const created = await versions().createVersionWithBuild({
      modelName,
      modelSha256,
      modelKey: modelKey(modelSha256),
      modelSize: model.length,
      spec,
      specHash: planSpecHash(spec),
      targets: spec.targets,
    });
    const buildId = created.build.id;
    const childData = (target: Target): TargetJobData => ({
      buildId,
      modelName,
      modelVersionId: created.version.id,
      version: created.version.version,
      target,
      modelKey: modelKey(modelSha256),
      modelSha256,
      spec,
      specHash: planSpecHash(spec),
    });
    await flows.add({
      name: JOB_NAMES.finalizeBuild,
      queueName: finalizeQueueName(config.queuePrefix),
      data: { buildId, modelVersionId: created.version.id },
      opts: finalizeJobOptions(buildId),
      children: spec.targets.map((target) => ({
        name: JOB_NAMES.buildTarget,
        queueName: targetQueueName(target, config.queuePrefix),
        data: childData(target),
        opts: targetJobOptions(buildId, target),
      })),
    });
    return { ...created, modelSha256, spec, childData };
  }

  async function settledVersion(versionId: string, timeoutMs?: number) {
    return waitFor(
      'the version to settle',
      async () => {
        const v = await versions().getVersionById(versionId);
        return v && v.status !== 'building' ? v : null;
      },
      timeoutMs,
    );
  }

  async function finishedJob(queueName: string, jobId: string): Promise<Job> {
    return waitFor(`job ${jobId} to finish`, async () => {
      const job = await queue(queueName).getJob(jobId);
      if (!job) return null;
      const state = await job.getState();
      // Re-read once finished: the snapshot above may predate the final attempt's bookkeeping.
      return state === 'completed' || state === 'failed' ? queue(queueName).getJob(jobId) : null;
    });
  }

  beforeAll(async () => {
    config = await testConfig({ WORKER_TARGETS: targets.join(',') });
    ds = await createDataSource(config.databaseUrl, { poolSize: 4 }).initialize();
    storage = new ObjectStorage(config.s3);
    redis = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
    flows = new FlowProducer({ connection: redis, prefix: config.bullPrefix });
    const logger = pino({ level: 'info' }, { write: (line: string) => void logLines.push(JSON.parse(line) as Record<string, unknown>) });
    worker = await startWorker(config, { logger });
  });

  afterAll(async () => {
    await worker?.close();
    await flows?.close();
    for (const q of queues.values()) await q.close();
    await redis?.quit();
    await storage?.close();
    await ds?.destroy();
    await cleanupTestConfig();
  });

  it('consumes one queue per served target plus the finalize queue', () => {
    expect(worker.queueNames).toEqual([...targets.map((t) => targetQueueName(t, config.queuePrefix)), finalizeQueueName(config.queuePrefix)]);
  });

  it('builds a plan per target, stores it content-addressed and completes the version', async () => {
    const model = tinyConvNet();
    const downloadsBefore = worker.models.stats.downloads;
    const { version, build } = await push('tiny', model);
    const settled = await settledVersion(version.id);
    expect(settled).toMatchObject({ status: 'complete', error: null });

    const rows = await plans().listForVersion(version.id);
    expect(rows.map((p) => p.target)).toEqual(targets);
    for (const plan of rows) {
      expect(plan).toMatchObject({ s3Key: `plans/${plan.sha256}.plan`, precision: 'fp32', tuned: false });
      expect(plan.header).toMatchObject({ sm: plan.target, modelSha256: sha256(model), precision: 'fp32' });
      expect(plan.buildMs).toEqual(expect.any(Number));
      // The object in S3 is exactly the plan the row describes.
      const local = path.join(config.workDir, 'check', `${plan.target}.plan`);
      const got = await storage.downloadToFile(plan.s3Key, local);
      expect(got).toEqual({ size: plan.size, sha256: plan.sha256 });
      expect(await sha256OfFile(local)).toEqual({ size: plan.size, sha256: plan.sha256 });
    }
    expect(new Set(rows.map((p) => p.sha256)).size).toBe(targets.length);

    // Both targets ran in this process and shared one model download.
    expect(worker.models.stats.downloads - downloadsBefore).toBe(1);

    const b = await builds().get(build.id);
    expect(b?.status).toBe('succeeded');
    for (const t of b!.targetStates) {
      expect(t).toMatchObject({ status: 'succeeded', attempts: 1, progress: 100, workerId: config.worker.id, errorCode: null });
    }
    for (const target of targets) {
      const job = await finishedJob(targetQueueName(target, config.queuePrefix), targetJobId(build.id, target));
      const plan = rows.find((p) => p.target === target)!;
      expect(job.returnvalue).toEqual({ target, planKey: plan.s3Key, sha256: plan.sha256, size: plan.size, tuned: false } satisfies TargetJobResult);
      expect(job.progress).toEqual({ stage: 'done', percent: 100 });
    }
    const parent = await finishedJob(finalizeQueueName(config.queuePrefix), `${build.id}-finalize`);
    expect(parent.returnvalue).toMatchObject({ buildStatus: 'succeeded', versionStatus: 'complete', succeeded: targets, failed: [] });

    // Structured log lines carry the build, job and target.
    for (const target of targets) {
      expect(logLines).toContainEqual(
        expect.objectContaining({ msg: 'target build succeeded', buildId: build.id, jobId: targetJobId(build.id, target), target, attempt: 1 }),
      );
    }
    expect(logLines).toContainEqual(expect.objectContaining({ msg: 'build finalized', buildId: build.id, versionStatus: 'complete' }));
  });

  it('does not record a second plan when a finished target job runs again', async () => {
    const { version, build, childData } = await push('rerun', tinyConvNet({ size: 6 }), { targets: ['sm_90'] });
    await settledVersion(version.id);
    const [first] = await plans().listForVersion(version.id);
    const q = queue(targetQueueName('sm_90', config.queuePrefix));
    const jobId = targetJobId(build.id, 'sm_90');

    // While the finished job exists, re-adding its id is a no-op (BullMQ de-duplicates by id).
    await q.add(JOB_NAMES.buildTarget, childData('sm_90'), targetJobOptions(build.id, 'sm_90'));
    // Once removed, the same id runs the whole processor again: a redelivery.
    await (await q.getJob(jobId))!.remove();
    await q.add(JOB_NAMES.buildTarget, childData('sm_90'), targetJobOptions(build.id, 'sm_90'));
    const rerun = await finishedJob(q.name, jobId);
    expect(await rerun.getState()).toBe('completed');
    expect(rerun.returnvalue).toMatchObject({ sha256: first.sha256, planKey: first.s3Key });

    // Without the plan object the redelivery rebuilds, re-uploads, and still records nothing new.
    await storage.delete(first.s3Key);
    await (await q.getJob(jobId))!.remove();
    await q.add(JOB_NAMES.buildTarget, childData('sm_90'), targetJobOptions(build.id, 'sm_90'));
    const rebuilt = await finishedJob(q.name, jobId);
    expect(await rebuilt.getState()).toBe('completed');
    expect(rebuilt.returnvalue).toMatchObject({ sha256: first.sha256, planKey: first.s3Key });
    expect((await storage.head(first.s3Key))?.size).toBe(first.size);

    const rows: { n: number }[] = await ds.query('SELECT count(*)::int AS n FROM plans WHERE model_version_id = $1', [version.id]);
    expect(rows[0].n).toBe(1);
    expect((await plans().get(version.id, 'sm_90'))?.id).toBe(first.id);
    expect(await builds().getTarget(build.id, 'sm_90')).toMatchObject({ status: 'succeeded' });
  });

  it('fails a model the optimizer rejects at once, without retries', async () => {
    const garbage = Buffer.from('this is not an ONNX protobuf \u00ff\u00fe');
    const { version, build } = await push('broken', garbage);
    const settled = await settledVersion(version.id);
    expect(settled.status).toBe('failed');
    expect(settled.error?.failedTargets.map((f) => [f.target, f.code])).toEqual(targets.map((t) => [t, 'E_PARSE']));

    for (const target of targets) {
      const job = await finishedJob(targetQueueName(target, config.queuePrefix), targetJobId(build.id, target));
      expect(await job.getState()).toBe('failed');
      expect(job.attemptsMade).toBe(1);
      expect(job.failedReason).toMatch(/^E_PARSE: /);
      expect(await builds().getTarget(build.id, target)).toMatchObject({ status: 'failed', attempts: 1, errorCode: 'E_PARSE' });
    }
    expect(await builds().get(build.id)).toMatchObject({ status: 'failed' });
    expect(await plans().listForVersion(version.id)).toEqual([]);
  });

  it('retries a transient failure with backoff and then succeeds', async () => {
    const model = tinyConvNet({ size: 5 });
    // The model is not in S3 yet: the first attempt cannot download it.
    const { version, build, modelSha256 } = await push('late-model', model, { upload: false, targets: ['sm_80'] });
    const retrying = await waitFor('the first attempt to fail', async () => {
      const t = await builds().getTarget(build.id, 'sm_80');
      return t?.errorCode ? t : null;
    });
    expect(retrying).toMatchObject({ status: 'queued', attempts: 1, errorCode: 'E_NOT_FOUND', stage: 'waiting-retry' });
    await storage.uploadStream(modelKey(modelSha256), Readable.from([model]), { sha256: modelSha256 });

    expect(await settledVersion(version.id)).toMatchObject({ status: 'complete' });
    expect(await builds().getTarget(build.id, 'sm_80')).toMatchObject({ status: 'succeeded', attempts: 2, errorCode: null });
    const job = await finishedJob(targetQueueName('sm_80', config.queuePrefix), targetJobId(build.id, 'sm_80'));
    // BullMQ counts the successful attempt too.
    expect(job.attemptsMade).toBe(2);
    expect(await job.getState()).toBe('completed');
  });

  it('fails the target after its last attempt when the failure persists', async () => {
    // Never uploaded: every attempt fails to download (backoff 2 s, then 4 s).
    const { version, build } = await push('never-uploaded', tinyConvNet({ size: 4 }), { upload: false, targets: ['sm_90'] });
    const settled = await settledVersion(version.id, 60_000);
    expect(settled).toMatchObject({ status: 'failed', error: { failedTargets: [{ target: 'sm_90', code: 'E_NOT_FOUND' }] } });
    expect(await builds().getTarget(build.id, 'sm_90')).toMatchObject({ status: 'failed', attempts: 3, errorCode: 'E_NOT_FOUND' });
    const job = await finishedJob(targetQueueName('sm_90', config.queuePrefix), targetJobId(build.id, 'sm_90'));
    expect(await job.getState()).toBe('failed');
    expect(job.attemptsMade).toBe(3);
  }, 90_000);

  it('fails a job whose name no handler declares', async () => {
    const q = queue(targetQueueName('sm_80', config.queuePrefix));
    const job = await q.add('mystery-job', {}, { attempts: 3 });
    const done = await finishedJob(q.name, job.id!);
    expect(await done.getState()).toBe('failed');
    expect(done.attemptsMade).toBe(1);
    expect(done.failedReason).toMatch(/^E_UNKNOWN_JOB: .*"mystery-job"/);
  });

  it('checks its handler table at start-up', () => {
    expect(() => new JobRouter('q', { 'build-targte': async () => undefined })).toThrow(WorkerStartError);
    expect(() => new JobRouter('q', {})).toThrow(/no job handlers/);
  });

  it('refuses gpu mode on a machine without a GPU, with the driver\'s reason', async () => {
    // This machine (and CI) has no NVIDIA driver: detection goes through the addon for real.
    const gpuConfig = { ...config, worker: { ...config.worker, mode: 'gpu' as const } };
    const err = await startWorker(gpuConfig, { logger: pino({ level: 'silent' }) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe('WORKER_MODE');
    expect((err as ConfigError).message).toMatch(/WORKER_MODE=gpu needs a usable NVIDIA GPU: no CUDA driver: libcuda\.so\.1 not found/);
    const none = await startWorker({ ...config, worker: { ...config.worker, targets: [] } }, { logger: pino({ level: 'silent' }) }).catch((e: unknown) => e);
    expect((none as ConfigError).variable).toBe('WORKER_TARGETS');
  });

  it('in gpu mode serves only its GPU\'s SM: another configured target is a config error naming both', async () => {
    const h100 = { index: 0, name: 'NVIDIA H100 80GB HBM3', sm: 'sm_90', multiprocessors: 132, memoryBytes: 85e9, driverVersion: '13.0' };
    const gpuConfig = { ...config, worker: { ...config.worker, mode: 'gpu' as const, targets: ['sm_80', 'sm_90'] as Target[] } };
    const err = await startWorker(gpuConfig, { logger: pino({ level: 'silent' }), detectGpu: async () => ({ device: h100 }) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe('WORKER_TARGETS');
    expect((err as ConfigError).message).toMatch(/WORKER_TARGETS has sm_80 but this worker's GPU 0 \(NVIDIA H100 80GB HBM3\) is sm_90.*WORKER_TARGETS=sm_90/);
    // A GPU of an SM the farm does not build for cannot serve any target.
    const ada = { ...h100, name: 'NVIDIA L4', sm: 'sm_89' };
    const adaErr = await startWorker(gpuConfig, { logger: pino({ level: 'silent' }), detectGpu: async () => ({ device: ada }) }).catch((e: unknown) => e);
    expect((adaErr as ConfigError).message).toMatch(/sm_80, sm_90 .* is sm_89.*not a farm target/);
  });

  it('in gpu mode tunes on the GPU: without a driver the target fails retryably with E_NO_GPU, nothing recorded', async () => {
    // The worker believes it drives an sm_86 GPU; the GPU steps run the real optimizer CLI, which finds no driver here.
    const a10 = { index: 0, name: 'NVIDIA A10', sm: 'sm_86', multiprocessors: 72, memoryBytes: 24e9, driverVersion: '13.0' };
    const gpuWorker = await startWorker(
      { ...config, workDir: path.join(config.workDir, 'gpu-mode'), worker: { ...config.worker, mode: 'gpu', targets: ['sm_86'], id: 'gpu-mode-a10' } },
      { logger: pino({ level: 'silent' }), detectGpu: async () => ({ device: a10 }) },
    );
    try {
      const { version, build } = await push('gpu-mode', tinyConvNet({ size: 7 }), { targets: ['sm_86'] });
      const state = await waitFor('the GPU step to fail', async () => {
        const t = (await builds().get(build.id))?.targetStates.find((x) => x.target === 'sm_86');
        return t?.errorCode ? t : null;
      });
      expect(state.errorCode).toBe('E_NO_GPU');
      expect(state.errorMessage).toMatch(/libcuda/);
      // An environment problem, not the model's: the job is retried (the target is not failed for good).
      expect(state.status).not.toBe('failed');
      expect(await plans().listForVersion(version.id)).toEqual([]);
    } finally {
      await gpuWorker.close();
      await queue(targetQueueName('sm_86', config.queuePrefix)).obliterate({ force: true });
    }
  });

  it('in cross mode never probes the GPU', async () => {
    const cross = await startWorker(
      { ...config, workDir: path.join(config.workDir, 'cross-probe'), worker: { ...config.worker, targets: ['sm_86'], id: 'cross-probe' } },
      { logger: pino({ level: 'silent' }), detectGpu: () => Promise.reject(new Error('cross mode must not touch the GPU')) },
    );
    await cross.close();
  });

  describe('main.ts', () => {
    const mainJs = path.join(REPO_ROOT, 'dist', 'apps', 'worker', 'src', 'main.js');

    function run(env: Record<string, string>, onLine?: (line: Record<string, unknown>, kill: () => void) => void) {
      const child = spawn(process.execPath, [mainJs], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
      const lines: Record<string, unknown>[] = [];
      let buffered = '';
      child.stdout.on('data', (chunk: Buffer) => {
        buffered += chunk.toString();
        let nl;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const text = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          try {
            const line = JSON.parse(text) as Record<string, unknown>;
            lines.push(line);
            onLine?.(line, () => child.kill('SIGTERM'));
          } catch {
            // Not a log line.
          }
        }
      });
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      return { lines, exited };
    }

    it('exits with a config error naming the variable', async () => {
      const { lines, exited } = run(testConfigEnv(config, { WORKER_CONCURRENCY: 'lots' }));
      expect(await exited).toBe(78);
      expect(lines.at(-1)).toMatchObject({ level: 'fatal', code: 'E_CONFIG' });
      expect(String(lines.at(-1)?.msg)).toContain('WORKER_CONCURRENCY');
    });

    it('starts, logs JSON lines and stops cleanly on SIGTERM', async () => {
      const { lines, exited } = run(testConfigEnv(config, { WORKER_ID: 'main-test', WORKER_TARGETS: 'sm_87' }), (line, kill) => {
        if (line.msg === 'worker started') kill();
      });
      expect(await exited).toBe(0);
      const msgs = lines.map((l) => l.msg);
      expect(msgs).toEqual(expect.arrayContaining(['worker started', 'shutting down', 'worker closed']));
      expect(lines.find((l) => l.msg === 'worker started')).toMatchObject({ workerId: 'main-test', targets: ['sm_87'], service: 'planforge-worker' });
    });
  });

  it('lets the running job finish when closing, and closes idempotently', async () => {
    const extra = await startWorker(
      { ...config, workDir: path.join(config.workDir, 'extra'), worker: { ...config.worker, targets: ['sm_86'], id: 'extra' } },
      { logger: pino({ level: 'silent' }) },
    );
    // A large (unparseable) model keeps the job busy downloading while the worker is asked to stop.
    const big = Buffer.alloc(48 * 1024 * 1024, 7);
    const { build, version } = await push('closing', big, { targets: ['sm_86'] });
    await waitFor('the job to start', async () => (await builds().getTarget(build.id, 'sm_86'))?.status === 'running');
    await Promise.all([extra.close(), extra.close()]);
    const job = await queue(targetQueueName('sm_86', config.queuePrefix)).getJob(targetJobId(build.id, 'sm_86'));
    expect(await job!.getState()).toBe('failed');
    expect(job!.failedReason).toMatch(/^E_PARSE: /);
    expect(await builds().getTarget(build.id, 'sm_86')).toMatchObject({ status: 'failed', errorCode: 'E_PARSE', workerId: 'extra' });
    await extra.close();
    // The finalize job runs on the other worker.
    expect((await settledVersion(version.id)).status).toBe('failed');
  });
});
