import type { BuildSpec, Target } from '../../../../libs/contracts/index.js';
import type { ModelSummary, ModelVersionEntity, PlanEntity, VersionError, VersionStatus } from '../../../../libs/registry/index.js';
import { paths } from './links.js';

export interface ModelDto {
  name: string;
  latestVersion: number | null;
  versionCount: number;
  createdAt: string;
  links: { versions: string };
}

export interface VersionDto {
  model: string;
  version: number;
  status: VersionStatus;
  sha256: string;
  size: number;
  spec: BuildSpec;
  specHash: string;
  targets: Target[];
  buildId: string | null;
  createdAt: string;
  completedAt: string | null;
  error: VersionError | null;
  /** Provenance: {type: 'upload', submittedBy} or {type: 'webhook', provider, repository, ref, tag, commit, …}. */
  source: Record<string, unknown> | null;
  links: { self: string; build: string | null; plans?: Partial<Record<Target, string>> };
}

export interface PlanDto {
  model: string;
  version: number;
  target: Target;
  sha256: string;
  size: number;
  precision: string;
  tuned: boolean;
  optimizerVersion: string;
  header: Record<string, unknown>;
  verification: Record<string, unknown> | null;
  /** Latency measured on a real GPU, when profiled. */
  profile: Record<string, unknown> | null;
  buildMs: number | null;
  createdAt: string;
  download: { url: string; expiresAt: string };
  links: { self: string; version: string };
}

export function toModelDto(m: ModelSummary, base: string): ModelDto {
  return {
    name: m.name,
    latestVersion: m.latestVersion,
    versionCount: m.versionCount,
    createdAt: m.createdAt.toISOString(),
    links: { versions: base + paths.model(m.name) },
  };
}

/** `plans`, when given, are the plans built so far: linked by target. */
export function toVersionDto(model: string, v: ModelVersionEntity, base: string, plans?: PlanEntity[]): VersionDto {
  return {
    model,
    version: v.version,
    status: v.status,
    sha256: v.modelSha256,
    size: v.modelSize,
    spec: v.spec,
    specHash: v.specHash,
    targets: v.spec.targets,
    buildId: v.buildId,
    createdAt: v.createdAt.toISOString(),
    completedAt: v.completedAt ? v.completedAt.toISOString() : null,
    error: v.error,
    source: v.source ?? null,
    links: {
      self: base + paths.version(model, v.version),
      build: v.buildId ? base + paths.build(v.buildId) : null,
      ...(plans && { plans: Object.fromEntries(plans.map((p) => [p.target, base + paths.plan(model, v.version, p.target)])) }),
    },
  };
}

export function toPlanDto(model: string, version: number, plan: PlanEntity, download: PlanDto['download'], base: string): PlanDto {
  return {
    model,
    version,
    target: plan.target,
    sha256: plan.sha256,
    size: plan.size,
    precision: plan.precision,
    tuned: plan.tuned,
    optimizerVersion: plan.optimizerVersion,
    header: plan.header,
    verification: plan.verification,
    profile: plan.profile ?? null,
    buildMs: plan.buildMs,
    createdAt: plan.createdAt.toISOString(),
    download,
    links: { self: base + paths.plan(model, version, plan.target), version: base + paths.version(model, version) },
  };
}
