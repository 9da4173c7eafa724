import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { ConfigError, type WorkerAppConfig } from '../../../libs/config/index.js';
import { JOB_NAMES, finalizeQueueName, isTarget, targetQueueName } from '../../../libs/contracts/index.js';
import { BuildControlRepository, BuildRepository, PlanRepository, VersionRepository, createDataSource, type RegistryDataSource } from '../../../libs/registry/index.js';
import { ObjectStorage } from '../../../libs/storage/index.js';
import { FinalizeJobProcessor } from './finalize-job.processor.js';
import { detectGpu, type GpuProbe } from './gpu-probe.js';
import { removeStaleFiles } from './stale-files.js';
import { JobRouter } from './job-router.js';
import { GpuPlanStage } from './gpu-tuning/index.js';
import { ModelCache } from './model-cache.js';
import { TargetJobProcessor } from './target-job.processor.js';
import { createWorkerLogger, type Logger } from './worker-logger.js';
import { WorkerOperations } from './worker-operations.js';

/** Finalizers only touch Postgres briefly: several at once cost nothing. */
const FINALIZE_CONCURRENCY = 4;

export interface StartWorkerOptions {
  logger?: Logger;
  /** For tests: what gpu mode detects instead of asking the CUDA driver (never called in cross mode). */
  detectGpu?: () => Promise<GpuProbe>;
  /** For tests: heartbeat interval (default WORKER_HEARTBEAT_MS). */
  heartbeatMs?: number;
}

export interface WorkerHandle {
  readonly workerId: string;
  /** Queue names consumed, target queues first, then the finalize queue. */
  readonly queueNames: string[];
  readonly models: ModelCache;
  /** Stops taking jobs, lets running ones finish, then releases every connection. Idempotent. */
  close(): Promise<void>;
}

/** Checks what the config type cannot: a config built by hand (tests, embedding) gets the same errors as the environment. */
function validateWorkerConfig(config: WorkerAppConfig): void {
  const { targets, mode, concurrency } = config.worker;
  if (!Array.isArray(targets) || targets.length === 0) {
    throw new ConfigError([{ variable: 'WORKER_TARGETS', message: 'a worker must serve at least one target' }]);
  }
  const unknown = targets.filter((t) => !isTarget(t));
  if (unknown.length) throw new ConfigError([{ variable: 'WORKER_TARGETS', message: `unknown targets: ${unknown.join(', ')}` }]);
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new ConfigError([{ variable: 'WORKER_CONCURRENCY', message: 'expected an integer >= 1' }]);
  }
  if (mode !== 'cross' && mode !== 'gpu') throw new ConfigError([{ variable: 'WORKER_MODE', message: 'expected cross or gpu' }]);
}

/**
 * gpu mode: the worker builds on its own GPU, so it needs one and serves only that GPU's SM; a
 * configured target of another SM is a config error naming both. cross mode never touches the GPU.
 */
async function checkGpuMode(config: WorkerAppConfig, detect: () => Promise<GpuProbe>): Promise<GpuProbe['device']> {
  if (config.worker.mode !== 'gpu') return null;
  const probe = await detect();
  if (!probe.device) {
    throw new ConfigError([{ variable: 'WORKER_MODE', message: `WORKER_MODE=gpu needs a usable NVIDIA GPU: ${probe.reason}; use WORKER_MODE=cross` }]);
  }
  const { sm, name, index } = probe.device;
  const mismatched = config.worker.targets.filter((t) => t !== sm);
  if (mismatched.length) {
    const fix = isTarget(sm) ? `set WORKER_TARGETS=${sm}` : `${sm} is not a farm target, run this worker with WORKER_MODE=cross`;
    throw new ConfigError([
      {
        variable: 'WORKER_TARGETS',
        message: `WORKER_TARGETS has ${mismatched.join(', ')} but this worker's GPU ${index} (${name}) is ${sm}; a gpu-mode worker serves only its GPU's SM: ${fix}`,
      },
    ]);
  }
  return probe.device;
}

/**
 * One worker process (one per GPU in production): a BullMQ Worker per served
 * target queue plus one for the finalize queue, sharing a registry pool, an S3
 * client and a model cache.
 */
export async function startWorker(config: WorkerAppConfig, opts: StartWorkerOptions = {}): Promise<WorkerHandle> {
  const workerId = config.worker.id;
  const log = opts.logger ?? createWorkerLogger(workerId);
  validateWorkerConfig(config);
  const gpu = await checkGpuMode(config, opts.detectGpu ?? detectGpu);
  const targets = [...new Set(config.worker.targets)];
  await mkdir(path.join(config.workDir, 'models'), { recursive: true });
  const stalePlans = await removeStaleFiles(path.join(config.workDir, 'plans'), 24 * 3600_000);
  if (stalePlans) log.info({ removed: stalePlans }, 'removed plan files left by an earlier crash');

  const cleanups: (() => Promise<unknown>)[] = [];
  const releaseAll = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch((err: unknown) => log.error({ err }, 'shutdown step failed'));
  };

  try {
    const dataSource: RegistryDataSource = createDataSource(config.databaseUrl, {
      applicationName: `planforge-worker ${workerId}`.slice(0, 63),
      poolSize: Math.min(20, 2 + targets.length * config.worker.concurrency + FINALIZE_CONCURRENCY),
    });
    await dataSource.initialize();
    cleanups.push(() => dataSource.destroy());

    const storage = new ObjectStorage(config.s3);
    cleanups.push(() => storage.close());

    // Workers block on Redis: commands must wait for a reconnect rather than fail (BullMQ requires null here).
    const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
    redis.on('error', (err) => log.warn({ err: err.message }, 'redis connection error'));
    cleanups.push(() => redis.quit().catch(() => redis.disconnect()));

    const builds = new BuildRepository(dataSource);
    const plans = new PlanRepository(dataSource);
    const versions = new VersionRepository(dataSource);
    const models = new ModelCache(storage, path.join(config.workDir, 'models'), log, config.worker.modelCacheBytes ?? Number.POSITIVE_INFINITY);
    await models.prune();
    // Build events, per-target logs, cancellation and the heartbeat (apps/worker/src/worker-operations.ts).
    const operations = new WorkerOperations({
      redis,
      farm: { bullPrefix: config.bullPrefix, queuePrefix: config.queuePrefix },
      storage,
      workerId,
      targets,
      mode: config.worker.mode,
      log,
      heartbeatMs: opts.heartbeatMs,
      gpuDevice: gpu,
    });
    cleanups.push(() => operations.close());
    const control = new BuildControlRepository(dataSource);
    const jobLog = operations.jobLogs.logger(log);
    // gpu mode: plans are tuned, checked and profiled on this worker's GPU (its SM is the target's).
    const gpuStage = gpu ? new GpuPlanStage(storage, workerId, config.workDir, jobLog) : undefined;
    const targetProcessor = new TargetJobProcessor({ workerId, targets, workDir: config.workDir, builds, plans, storage, models, log: jobLog, control, gpu: gpuStage });
    const finalizeProcessor = new FinalizeJobProcessor(versions, log);

    const routers = [
      ...targets.map(
        (target) =>
          [new JobRouter(targetQueueName(target, config.queuePrefix), { [JOB_NAMES.buildTarget]: operations.jobLogs.wrap(targetProcessor.process) }), config.worker.concurrency] as const,
      ),
      [new JobRouter(finalizeQueueName(config.queuePrefix), { [JOB_NAMES.finalizeBuild]: finalizeProcessor.process }), FINALIZE_CONCURRENCY] as const,
    ];

    const workers: Worker[] = [];
    // Closing the workers first lets running jobs finish while the pool, S3 and Redis are still there.
    cleanups.push(() => Promise.all(workers.map((w) => w.close())));
    for (const [router, concurrency] of routers) {
      const worker = new Worker(router.queueName, router.process, {
        connection: redis,
        prefix: config.bullPrefix,
        concurrency,
        autorun: false,
        // A killed worker's jobs are redelivered once their lock expires (tests shorten both).
        ...(config.worker.lockDurationMs ? { lockDuration: config.worker.lockDurationMs } : {}),
        ...(config.worker.stalledIntervalMs ? { stalledInterval: config.worker.stalledIntervalMs } : {}),
      });
      worker.on('error', (err) => log.error({ err, queue: router.queueName }, 'queue worker error'));
      worker.on('failed', (job: Job | undefined, err: Error) => {
        if (job) log.debug({ queue: router.queueName, jobId: job.id, attemptsMade: job.attemptsMade, err: err.message }, 'job failed');
      });
      if (router.queueName === finalizeQueueName(config.queuePrefix)) operations.attachFinalizeWorker(worker);
      else operations.attachTargetWorker(worker);
      workers.push(worker);
    }
    await Promise.all(workers.map((w) => w.waitUntilReady()));
    for (const worker of workers) {
      // run() resolves when the worker closes; errors surface through the 'error' event.
      worker.run().catch((err: unknown) => log.error({ err, queue: worker.name }, 'queue worker stopped'));
    }

    await operations.start();
    const queueNames = routers.map(([router]) => router.queueName);
    log.info({ queues: queueNames, mode: config.worker.mode, concurrency: config.worker.concurrency, targets }, 'worker started');
    if (gpu) log.info({ gpu }, 'gpu mode: plans are autotuned (shared timing cache in S3), checked against the CPU reference and profiled on this GPU');

    let closing: Promise<void> | undefined;
    return {
      workerId,
      queueNames,
      models,
      close() {
        closing ??= (async () => {
          log.info('worker closing: waiting for running jobs');
          await releaseAll();
          log.info('worker closed');
        })();
        return closing;
      },
    };
  } catch (err) {
    await releaseAll();
    throw err;
  }
}
