import { randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { UnrecoverableError, type Job } from 'bullmq';
import { isTarget, type Target, type TargetJobData, type TargetJobResult } from '../../../libs/contracts/index.js';
import { BuildError, OPTIMIZER_VERSION, buildPlan, checkModel, inspectPlan } from '../../../libs/native/index.js';
import { RegistryError, type BuildControlRepository, type BuildRepository, type PlanRepository } from '../../../libs/registry/index.js';
import { ObjectStorage, planKey, sha256OfFile } from '../../../libs/storage/index.js';
import { CalibrationFetcher, type PreparedCalibration } from './calibration/index.js';
import type { GpuPlanStage, GpuStageResult } from './gpu-tuning/index.js';
import type { CachedModel, ModelCache } from './model-cache.js';
import { ProgressReporter } from './progress-reporter.js';
import { withRegistryRetry } from './registry-retry.js';
import { VerificationError, verificationFailureMessage, verifyPlan } from './verification/index.js';
import type { Logger } from './worker-logger.js';

/** The model itself is at fault: another attempt would fail the same way. */
export const MODEL_IS_BAD_CODES: ReadonlySet<string> = new Set([
  'E_PARSE',
  'E_UNSUPPORTED_OP',
  'E_PROFILE',
  'E_INVALID_MODEL',
  'E_EXTERNAL_DATA',
  'E_SHAPE',
  'E_RESOURCE',
]);

export const PLAN_CONTENT_TYPE = 'application/vnd.planforge.plan';

const SHA256_HEX = /^[0-9a-f]{64}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface TargetJobDeps {
  workerId: string;
  /** Targets this process serves; a job for another one is a routing bug. */
  targets: readonly Target[];
  workDir: string;
  builds: BuildRepository;
  plans: PlanRepository;
  storage: ObjectStorage;
  models: ModelCache;
  log: Logger;
  /** Cancellation checks (DELETE /v1/builds/:id); without it a build cannot be cancelled mid-run. */
  control?: BuildControlRepository;
  /**
   * gpu mode (the worker's GPU is the target's SM): autotune the plan on it with the
   * shared timing cache, check it on the GPU and profile it. Absent in cross mode, where
   * plans keep their heuristic tactics and are marked untuned.
   */
  gpu?: GpuPlanStage;
}

/**
 * Builds one plan for one target: model from S3 (cached by sha) → optimizer (off
 * the event loop) → plan to S3 (content-addressed) → registry row (idempotent).
 * Safe to run again for the same job: nothing is duplicated.
 */
export class TargetJobProcessor {
  private readonly calibration: CalibrationFetcher;

  constructor(private readonly deps: TargetJobDeps) {
    this.calibration = new CalibrationFetcher(deps.storage, deps.workDir);
  }

  readonly process = async (job: Job<TargetJobData, TargetJobResult>, _token?: string, signal?: AbortSignal): Promise<TargetJobResult> => {
    const data = job.data;
    const attempt = job.attemptsMade + 1;
    const maxAttempts = job.opts.attempts ?? 1;
    const log = this.deps.log.child({ buildId: data?.buildId, jobId: job.id, target: data?.target, attempt, ...(data?.requestId && { requestId: data.requestId }) });
    const invalid = this.invalidData(data);
    if (invalid) {
      log.error({ reason: invalid }, 'target job rejected');
      if (UUID.test(String(data?.buildId)) && isTarget(String(data?.target))) {
        await this.deps.builds.markTargetFailed(data.buildId, data.target, 'E_JOB_DATA', invalid).catch(() => undefined);
      }
      throw new UnrecoverableError(`E_JOB_DATA: ${invalid}`);
    }

    const { buildId, target } = data;
    try {
      await this.deps.builds.markTargetRunning(buildId, target, this.deps.workerId, attempt);
    } catch (err) {
      // The build is gone (deleted, or the job outlived its database): nothing to build for.
      if (err instanceof RegistryError && err.code === 'E_NOT_FOUND') throw new UnrecoverableError(`${err.code}: ${err.message}`);
      throw err;
    }
    if (await this.cancelled(buildId, target)) {
      log.info('build was cancelled before this target started');
      throw new UnrecoverableError('E_CANCELLED: the build was cancelled');
    }
    const recorded = await this.deps.plans.get(data.modelVersionId, target);
    if (recorded && (await this.deps.storage.exists(recorded.s3Key))) {
      // A redelivery of a job that already succeeded (e.g. its worker died before acking): hours of build saved.
      await job.updateProgress({ stage: 'done', percent: 100 });
      await this.deps.builds.markTargetSucceeded(buildId, target);
      log.info({ planKey: recorded.s3Key, sha256: recorded.sha256 }, 'plan already recorded for this version and target; build skipped');
      return { target, planKey: recorded.s3Key, sha256: recorded.sha256, size: recorded.size, tuned: recorded.tuned };
    }
    log.info({ model: data.modelName, version: data.version, maxAttempts }, 'target build started');
    const planDir = path.join(this.deps.workDir, 'plans');
    const planPath = path.join(planDir, `${buildId}-${target}-a${attempt}-${randomUUID().slice(0, 8)}.plan`);
    const progress = new ProgressReporter(job, this.deps.builds, buildId, target, log);
    let model: CachedModel | undefined;
    let calibration: PreparedCalibration | undefined;
    try {
      progress.report('download', 0);
      model = await this.deps.models.acquire(data.modelKey, data.modelSha256);
      const modelPath = model.path;
      // Inputs (names, dtypes, shapes) for the calibration layout and the verification inputs.
      const modelInfo = await checkModel(modelPath);
      calibration = await this.calibration.prepare(data, modelInfo.inputs);
      if (calibration) log.info({ batches: calibration.batches, samples: calibration.samples, table: Boolean(calibration.options.cacheFile) }, 'calibration data ready');
      await mkdir(planDir, { recursive: true });
      const started = performance.now();
      let optimizerDone = false;
      const summary = await buildPlan({
        modelPath,
        outputPath: planPath,
        target,
        precision: data.spec.precision,
        profiles: data.spec.profiles,
        layerPrecisions: data.spec.layerPrecisions,
        specHash: data.specHash,
        modelSha256: data.modelSha256,
        ...(calibration && { calibration: calibration.options }),
        // The addon may deliver its last progress calls after the promise settles: drop those.
        onProgress: (stage, percent) => {
          if (!optimizerDone) progress.report(stage, percent);
        },
        signal,
      });
      optimizerDone = true;
      let header = summary.header;
      let builtSha256 = summary.planSha256;
      let gpu: GpuStageResult | undefined;
      if (this.deps.gpu) {
        gpu = await this.deps.gpu.run(planPath, target, { signal, log, onStep: (step) => progress.report(step, 0) });
        header = (await inspectPlan(planPath)).header;
        builtSha256 = gpu.tune.planSha256;
      }
      const buildMs = Math.round(performance.now() - started);
      // The plan against the ONNX model before anything is stored: a plan that computes something else is no plan.
      progress.report('verify', 0);
      const verification = await verifyPlan({
        planPath,
        modelPath,
        modelInputs: modelInfo.inputs,
        precision: data.spec.precision,
        layerPrecisions: data.spec.layerPrecisions,
        profiles: data.spec.profiles,
        settings: data.spec.verification,
        sampleDir: calibration?.options.dataDir,
        onProgress: (percent) => progress.report('verify', percent),
        signal,
      });
      log.info({ passed: verification.passed, maxAbs: verification.maxAbs, maxRel: verification.maxRel, top1: verification.top1, durationMs: verification.durationMs }, 'plan verified');
      if (!verification.passed) throw new VerificationError(verificationFailureMessage(verification));
      progress.report('upload', 100);
      // From here the target finishes whatever happens: a cancellation arriving later leaves it be, so nothing is half-stored.
      await progress.flush();
      const control = this.deps.control;
      // Verified plan in hand: a Postgres outage from here on is waited out (idempotent writes), not a lost attempt.
      if (control && !(await withRegistryRetry('claimCompletion', () => control.claimCompletion(buildId, target), log))) {
        throw Object.assign(new Error('the build was cancelled'), { code: 'E_CANCELLED' });
      }
      const plan = await sha256OfFile(planPath);
      if (builtSha256 && builtSha256 !== plan.sha256) {
        // The file on disk is not what the optimizer wrote (disk trouble): worth another attempt.
        throw Object.assign(new Error(`plan file sha256 ${plan.sha256} differs from the optimizer's ${builtSha256}`), { code: 'E_IO' });
      }
      const key = planKey(plan.sha256);
      // Content-addressed: identical bytes are already there (a retry, or another version with the same plan).
      if (!(await this.deps.storage.exists(key))) {
        await this.deps.storage.uploadFile(key, planPath, {
          sha256: plan.sha256,
          contentType: PLAN_CONTENT_TYPE,
          metadata: { target, 'optimizer-version': header.optimizerVersion ?? OPTIMIZER_VERSION },
        });
      }
      const row = await withRegistryRetry('recordPlan', () => this.deps.plans.recordPlan({
        modelVersionId: data.modelVersionId,
        target,
        s3Key: key,
        sha256: plan.sha256,
        size: plan.size,
        precision: header.precision,
        tuned: header.tuned,
        optimizerVersion: header.optimizerVersion ?? OPTIMIZER_VERSION,
        header: { ...header },
        verification: { ...verification, ...(gpu && { gpu: gpu.gpuVerification }) },
        ...(gpu && { profile: { ...gpu.profile, tuning: gpu.tune } }),
        buildMs,
      }), log);
      if (row.sha256 !== plan.sha256) {
        // An earlier attempt recorded a plan already; the first one recorded stays the version's plan.
        log.warn({ recorded: row.sha256, built: plan.sha256 }, 'a plan was already recorded for this version and target; keeping it');
      }
      progress.report('done', 100);
      await progress.flush();
      await withRegistryRetry('markTargetSucceeded', () => this.deps.builds.markTargetSucceeded(buildId, target), log);
      log.info(
        { planKey: row.s3Key, sha256: row.sha256, size: row.size, buildMs, nodesBefore: summary.nodesBefore, nodesAfter: summary.nodesAfter },
        'target build succeeded',
      );
      return { target, planKey: row.s3Key, sha256: row.sha256, size: row.size, tuned: row.tuned };
    } catch (err) {
      await progress.flush();
      if (await this.cancelled(buildId, target)) {
        log.info({ stoppedBy: (err as Error)?.message }, 'target build stopped: the build was cancelled');
        throw new UnrecoverableError('E_CANCELLED: the build was cancelled');
      }
      throw await this.fail(err, buildId, target, attempt >= maxAttempts, log);
    } finally {
      await rm(planPath, { force: true }).catch(() => undefined);
      await calibration?.dispose().catch(() => undefined);
      model?.release();
      void this.deps.models.prune();
    }
  };

  /** The build was cancelled: the target is recorded cancelled (unless it had succeeded). */
  private async cancelled(buildId: string, target: Target): Promise<boolean> {
    const control = this.deps.control;
    if (!control || !(await control.isCancelled(buildId).catch(() => false))) return false;
    await control.markTargetCancelled(buildId, target).catch(() => undefined);
    return true;
  }

  /** Records the failure and returns what to throw: UnrecoverableError when retrying cannot help. */
  private async fail(err: unknown, buildId: string, target: Target, lastAttempt: boolean, log: Logger): Promise<unknown> {
    const code = errorCode(err);
    const message = err instanceof Error ? err.message : String(err);
    // Model-is-bad codes, plus whatever else the optimizer knows a retry cannot fix (bad argument, wrong calibration).
    // Also errors that say so themselves: verification (deterministic) and unusable calibration archives.
    const modelIsBad =
      (err instanceof BuildError && (MODEL_IS_BAD_CODES.has(err.code) || err.permanent)) || (!(err instanceof BuildError) && (err as { permanent?: unknown })?.permanent === true);
    try {
      if (modelIsBad || lastAttempt) await this.deps.builds.markTargetFailed(buildId, target, code, message);
      else await this.deps.builds.markTargetRetrying(buildId, target, code, message);
    } catch (recordErr) {
      // The job's own outcome matters more than its bookkeeping; finalize records lost targets.
      log.error({ err: recordErr }, 'could not record the target failure');
    }
    if (modelIsBad) {
      log.warn({ code, message }, 'target build failed: the model is not buildable');
      return new UnrecoverableError(`${code}: ${message}`);
    }
    log.error({ err, code, willRetry: !lastAttempt }, 'target build failed');
    return err;
  }

  private invalidData(data: TargetJobData | undefined): string | null {
    if (!data || typeof data !== 'object') return 'job data is not an object';
    if (!UUID.test(String(data.buildId))) return `buildId is not a uuid: ${String(data.buildId)}`;
    if (!UUID.test(String(data.modelVersionId))) return `modelVersionId is not a uuid: ${String(data.modelVersionId)}`;
    if (!isTarget(String(data.target))) return `unknown target ${String(data.target)}`;
    if (!this.deps.targets.includes(data.target)) return `target ${data.target} is not served by this worker (${this.deps.targets.join(', ')})`;
    if (!SHA256_HEX.test(String(data.modelSha256))) return 'modelSha256 is not a sha256 hex digest';
    if (typeof data.modelKey !== 'string' || !data.modelKey) return 'modelKey is missing';
    if (!data.spec || typeof data.spec !== 'object') return 'spec is missing';
    return null;
  }
}

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown })?.code;
  if (typeof code === 'string' && /^E[A-Z0-9_]+$/.test(code)) return code;
  return 'E_INTERNAL';
}
