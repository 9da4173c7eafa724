import { rename, rm, stat } from 'node:fs/promises';
import { inspectPlan, profilePlanOnGpu, tunePlanOnGpu, verifyPlanOnGpu, type GpuProfile, type GpuVerification, type PlanInfo, type TuneResult } from '../../../../libs/native/index.js';
import { ObjectStorage } from '../../../../libs/storage/index.js';
import type { Logger } from '../worker-logger.js';
import { TimingCacheStore } from './timing-cache-store.js';

/** A GPU step longer than this is stuck (tuning ResNet-50 takes seconds). */
const STEP_TIMEOUT_MS = 20 * 60_000;

/**
 * The shapes a plan is tuned and profiled at: each input's profile opt shape, its static
 * shape, or (no profile, dynamic dims) the static dims with 1 for every dynamic one; those
 * inputs are named so the worker can say the plan was tuned for a guessed shape.
 */
export function tuningShapes(info: Pick<PlanInfo, 'inputs' | 'profiles'>): { shapes: Record<string, number[]>; guessed: string[] } {
  const shapes: Record<string, number[]> = {};
  const guessed: string[] = [];
  for (const input of info.inputs) {
    const profile = info.profiles[input.name];
    if (profile) {
      shapes[input.name] = [...profile.opt];
      continue;
    }
    const dims = input.shape ?? [];
    if (dims.some((d) => typeof d !== 'number' || d < 0)) guessed.push(input.name);
    shapes[input.name] = dims.map((d) => (typeof d === 'number' && d >= 0 ? d : 1));
  }
  return { shapes, guessed };
}

export interface GpuStageResult {
  /** The shapes tuned and profiled at, and the inputs whose shape was guessed (no profile). */
  shapes: Record<string, number[]>;
  guessedShapes: string[];
  tune: Pick<TuneResult, 'tunedLayers' | 'timingCacheHits' | 'tuneSeconds' | 'planSha256' | 'planSize'> & { timingCacheFiles: number; timingCacheEntriesBefore: number };
  gpuVerification: GpuVerification;
  profile: GpuProfile;
}

/** Thrown when the plan computes something else on the GPU than on the CPU reference. */
export class GpuVerificationError extends Error {
  readonly code = 'E_VERIFICATION';
  /** Kernels are deterministic: another attempt on this GPU would compute the same. */
  readonly permanent = true;
  constructor(readonly result: GpuVerification) {
    const bad = result.outputs.filter((o) => o.pass === false || o.error);
    super(
      `the plan's GPU outputs differ from the CPU reference: ${bad
        .map((o) => (o.error ? `${o.name}: ${o.error}` : `${o.name}: max abs ${o.maxAbs}, ${o.outsideTolerance} value(s) outside tolerance`))
        .join('; ')}`,
    );
    this.name = 'GpuVerificationError';
  }
}

/**
 * What a gpu-mode worker adds to a build for its own SM: autotune the plan on the GPU
 * (starting from, and publishing back, the shared timing cache), check the tuned plan on
 * the GPU against the CPU reference, and profile it at the profiles' opt shapes. The
 * plan file at `planPath` is replaced by the tuned one.
 */
export class GpuPlanStage {
  private readonly timingCaches: TimingCacheStore;

  constructor(
    storage: ObjectStorage,
    workerId: string,
    private readonly workDir: string,
    log: Logger,
  ) {
    this.timingCaches = new TimingCacheStore(storage, workerId, workDir, log);
  }

  async run(planPath: string, target: string, opts: { signal?: AbortSignal; onStep?: (step: 'tune' | 'gpu-verify' | 'profile') => void; log: Logger }): Promise<GpuStageResult> {
    const { signal, log } = opts;
    const cachePath = `${planPath}.timing.tsv`;
    const tunedPath = `${planPath}.tuned`;
    try {
      opts.onStep?.('tune');
      const { shapes, guessed } = tuningShapes(await inspectPlan(planPath));
      if (guessed.length) log.warn({ inputs: guessed, shapes }, 'no optimization profile for dynamic inputs: tuned and profiled with 1 for each dynamic dimension');
      const shared = await this.timingCaches.fetch(target, cachePath, signal);
      const tune = await tunePlanOnGpu(planPath, tunedPath, cachePath, { shapes, signal, timeoutMs: STEP_TIMEOUT_MS });
      await rename(tunedPath, planPath);
      // Published even when every layer was a cache hit: other workers may lack some of the merged entries.
      if ((await stat(cachePath).catch(() => null))?.isFile()) {
        const key = await this.timingCaches.publish(target, cachePath).catch((err: Error) => {
          log.warn({ err: err.message }, 'timing cache not published (the build goes on)');
          return null;
        });
        if (key) log.info({ key }, 'timing cache published');
      }
      log.info({ tunedLayers: tune.tunedLayers, timingCacheHits: tune.timingCacheHits, tuneSeconds: tune.tuneSeconds, sharedFiles: shared?.files ?? 0 }, 'plan tuned on the GPU');

      opts.onStep?.('gpu-verify');
      const gpuVerification = await verifyPlanOnGpu(planPath, { shapes, signal, timeoutMs: STEP_TIMEOUT_MS });
      if (!gpuVerification.pass) throw new GpuVerificationError(gpuVerification);

      opts.onStep?.('profile');
      const profile = await profilePlanOnGpu(planPath, { shapes, signal, timeoutMs: STEP_TIMEOUT_MS });
      log.info({ p50Ms: profile.p50Ms, p99Ms: profile.p99Ms, throughputPerSecond: profile.throughputPerSecond, device: profile.device.name }, 'plan profiled on the GPU');
      return {
        shapes,
        guessedShapes: guessed,
        tune: {
          tunedLayers: tune.tunedLayers,
          timingCacheHits: tune.timingCacheHits,
          tuneSeconds: tune.tuneSeconds,
          planSha256: tune.planSha256,
          planSize: tune.planSize,
          timingCacheFiles: shared?.files ?? 0,
          timingCacheEntriesBefore: shared?.entries ?? 0,
        },
        gpuVerification,
        profile,
      };
    } finally {
      await rm(cachePath, { force: true });
      await rm(tunedPath, { force: true });
    }
  }
}
