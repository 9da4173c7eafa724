import type { BuildSpec, Target } from '../../../../libs/contracts/index.js';
import type { BuildStatus, BuildTargetEntity, BuildWithTargets, TargetStatus } from '../../../../libs/registry/index.js';
import { paths } from './links.js';

export interface SubmitBuildResponse {
  buildId: string;
  model: string;
  version: number;
  targets: Target[];
  /** 'succeeded' when every target came from the build cache (nothing was queued). */
  status: 'queued' | 'succeeded';
  /** Targets satisfied from the build cache: no job runs for them. */
  cacheHits: Target[];
  /** Things that will likely make targets fail, e.g. ops the optimizer does not implement. */
  warnings?: string[];
  links: { self: string; version: string };
}

export interface TimingsDto {
  queuedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  /** Waiting for a worker: startedAt - queuedAt. */
  queuedMs: number | null;
  /** Working: finishedAt - startedAt. */
  runMs: number | null;
  /** finishedAt - queuedAt. */
  totalMs: number | null;
  /** Per target: the plan came from the build cache (runMs is 0: no job ran). */
  cacheHit?: boolean;
}

export interface ErrorDto {
  code: string | null;
  message: string | null;
}

export interface BuildTargetDto {
  target: Target;
  status: TargetStatus;
  stage: string | null;
  /** 0-100. */
  progress: number;
  attempts: number;
  workerId: string | null;
  /** Satisfied from the build cache: no job ran. */
  cacheHit: boolean;
  timings: TimingsDto;
  /** The last error; kept while a retry is pending. */
  error: ErrorDto | null;
  links: { plan: string | null };
}

export interface BuildStatusDto {
  buildId: string;
  model: string;
  version: number;
  modelVersionId: string;
  status: BuildStatus;
  spec: BuildSpec;
  timings: TimingsDto;
  error: string | null;
  targets: BuildTargetDto[];
  links: { self: string; version: string };
}

function iso(date: Date | null): string | null {
  return date ? date.toISOString() : null;
}

function span(from: Date | null, to: Date | null): number | null {
  return from && to ? Math.max(0, to.getTime() - from.getTime()) : null;
}

export function timings(queuedAt: Date, startedAt: Date | null, finishedAt: Date | null): TimingsDto {
  return {
    queuedAt: queuedAt.toISOString(),
    startedAt: iso(startedAt),
    finishedAt: iso(finishedAt),
    queuedMs: span(queuedAt, startedAt),
    runMs: span(startedAt, finishedAt),
    totalMs: span(queuedAt, finishedAt),
  };
}

export function toBuildStatusDto(build: BuildWithTargets, model: string, version: number, base: string): BuildStatusDto {
  const targetDto = (t: BuildTargetEntity): BuildTargetDto => ({
    target: t.target,
    status: t.status,
    stage: t.stage,
    progress: t.progress,
    attempts: t.attempts,
    workerId: t.workerId,
    cacheHit: t.cacheHit,
    timings: { ...timings(build.createdAt, t.startedAt, t.finishedAt), cacheHit: t.cacheHit },
    error: t.errorCode || t.errorMessage ? { code: t.errorCode, message: t.errorMessage } : null,
    links: { plan: t.status === 'succeeded' ? base + paths.plan(model, version, t.target) : null },
  });
  return {
    buildId: build.id,
    model,
    version,
    modelVersionId: build.modelVersionId,
    status: build.status,
    spec: build.spec,
    timings: timings(build.createdAt, build.startedAt, build.finishedAt),
    error: build.error,
    targets: build.targetStates.map(targetDto),
    links: { self: base + paths.build(build.id), version: base + paths.version(model, version) },
  };
}
