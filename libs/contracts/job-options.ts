import type { JobsOptions } from 'bullmq';
import type { Target } from './targets.js';

/**
 * Every job option and job id of the farm lives here, so retries, backoff and
 * de-duplication are decided in one place.
 */
export const TARGET_JOB_ATTEMPTS = 3;

export function targetJobId(buildId: string, target: Target): string {
  return `${buildId}-${target}`;
}

export function finalizeJobId(buildId: string): string {
  return `${buildId}-finalize`;
}

export function targetJobOptions(buildId: string, target: Target): JobsOptions {
  return {
    jobId: targetJobId(buildId, target),
    attempts: TARGET_JOB_ATTEMPTS,
    backoff: { type: 'exponential', delay: 2_000 },
    // A failed target must not block the version: the parent records it as partially failed.
    ignoreDependencyOnFailure: true,
    removeOnComplete: { age: 7 * 24 * 3600, count: 10_000 },
    removeOnFail: { age: 30 * 24 * 3600 },
  };
}

export function finalizeJobOptions(buildId: string): JobsOptions {
  return {
    jobId: finalizeJobId(buildId),
    attempts: 10,
    backoff: { type: 'exponential', delay: 1_000 },
    removeOnComplete: { age: 7 * 24 * 3600, count: 10_000 },
    removeOnFail: { age: 30 * 24 * 3600 },
  };
}
