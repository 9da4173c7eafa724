import type { Target } from './targets.js';
import type { BuildSpec } from './build-spec.js';

/** One BullMQ queue per GPU target; BullMQ forbids ':' in queue names. */
export function targetQueueName(target: Target, prefix = 'build'): string {
  return `${prefix}-${target}`;
}

/** The parent of every build flow runs here once all target children have finished. */
export function finalizeQueueName(prefix = 'build'): string {
  return `${prefix}-finalize`;
}

export const JOB_NAMES = {
  buildTarget: 'build-target',
  finalizeBuild: 'finalize-build',
} as const;
export type JobName = (typeof JOB_NAMES)[keyof typeof JOB_NAMES];

/** Data of a child job: build one plan for one target. */
export interface TargetJobData {
  buildId: string;
  modelName: string;
  modelVersionId: string;
  version: number;
  target: Target;
  /** S3 key of the uploaded ONNX model (content-addressed). */
  modelKey: string;
  modelSha256: string;
  spec: BuildSpec;
  specHash: string;
  /** INT8 calibration samples uploaded with the build: `calibration/<sha256>.npz` (content-addressed). */
  calibrationKey?: string;
  calibrationSha256?: string;
  /** A calibration table (JSON, planforge-opt --calib-cache) used instead of calibrating: `calibration/<sha256>.json`. */
  calibrationTableKey?: string;
  calibrationTableSha256?: string;
  /** X-Request-Id of the submission: worker log lines of the job carry it. */
  requestId?: string;
}

/** Return value of a child job, read by the parent. */
export interface TargetJobResult {
  target: Target;
  planKey: string;
  sha256: string;
  size: number;
  tuned: boolean;
}

/** Data of the parent job. */
export interface FinalizeJobData {
  buildId: string;
  modelVersionId: string;
}
