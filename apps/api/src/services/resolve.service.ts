import { Injectable } from '@nestjs/common';
import { z } from 'zod';
import { MODEL_NAME_PATTERN, TARGETS, isTarget, type Target } from '../../../../libs/contracts/index.js';
import { CHANNEL_NAME_PATTERN, ChannelRepository } from '../../../../libs/registry/index.js';
import { parseInput } from '../dto/validate.js';
import { ApiError } from '../errors/api.error.js';
import { StorageRepository } from '../repositories/storage.repository.js';
import { PLAN_URL_TTL_SECONDS } from './model.service.js';
import { CanaryResolver } from '../rollout/rollout-canary.js';

const VERSION = /^v?(\d{1,6})(?:\.(\d{1,6}))?(?:\.(\d{1,6}))?(?:[-+].*)?$/;

const resolveQuery = z.object({
  model: z.string().regex(MODEL_NAME_PATTERN, 'expected a model name'),
  channel: z.string().regex(CHANNEL_NAME_PATTERN, 'expected a channel name'),
  /** 86, sm_86, sm86 */
  sm: z.string().regex(/^(?:sm_?)?\d{2,3}$/i, 'expected a compute capability like 86 or sm_86'),
  /** The device's runtime (planforge optimizer) version, e.g. 0.1.0; optional. */
  runtime: z.string().regex(VERSION, 'expected a version like 1.4.2').optional(),
  /** The device's stable id: during a canary rollout it decides which version the device gets. */
  device: z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, 'expected 1-128 characters of [A-Za-z0-9._:-]').optional(),
});

export interface ResolvedDto {
  model: string;
  channel: string;
  version: number;
  target: Target;
  sha256: string;
  size: number;
  precision: string;
  optimizerVersion: string;
  url: string;
  expiresAt: string;
  /** Only while a canary rollout watches the channel: its share and this device's cohort. */
  canary?: { percent: number; cohort: 'canary' | 'stable' };
}

/** A presigned URL is reused while it has at least this long to live (devices get >= 10 minutes). */
const URL_MIN_REMAINING_MS = 10 * 60_000;
const URL_CACHE_MAX = 10_000;

export type ResolveOutcome = { status: 200; etag: string; body: ResolvedDto } | { status: 304; etag: string };

function major(version: string): number | null {
  const m = VERSION.exec(version.trim());
  return m ? Number(m[1]) : null;
}

/** Strong ETag of what a device would download: the plan's bytes and the version it belongs to. */
export function planEtag(sha256: string, version: number): string {
  return `"${sha256}-v${version}"`;
}

/** If-None-Match: a list of ETags, weak or strong, or *. */
function matches(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false;
  return ifNoneMatch.split(',').some((tag) => {
    const t = tag.trim();
    return t === '*' || t.replace(/^W\//, '') === etag;
  });
}

/**
 * Device-side resolution: the plan a channel serves for one GPU and runtime.
 * Plans are per exact SM (a plan for sm_86 does not load on sm_80). Runtime rule:
 * a runtime loads plans written by an optimizer of the same MAJOR version (the
 * plan format only changes incompatibly with a major release); without
 * `runtime` no check is made.
 */
@Injectable()
export class ResolveService {
  /**
   * Presigned plan URLs by S3 key. Signing runs the SDK's middleware stack and is
   * the most expensive step of a resolve; plans are immutable and every viewer may
   * fetch them, so one URL serves every device that asks within a few minutes.
   */
  private readonly urls = new Map<string, { url: string; expiresAt: number }>();

  constructor(
    private readonly channels: ChannelRepository,
    private readonly storage: StorageRepository,
    private readonly canaries: CanaryResolver,
  ) {}

  private async presigned(key: string): Promise<{ url: string; expiresAt: number }> {
    const cached = this.urls.get(key);
    if (cached && cached.expiresAt - Date.now() >= URL_MIN_REMAINING_MS) return cached;
    const expiresAt = Date.now() + PLAN_URL_TTL_SECONDS * 1000;
    const fresh = { url: await this.storage.presignGet(key, PLAN_URL_TTL_SECONDS), expiresAt };
    if (this.urls.size >= URL_CACHE_MAX) this.urls.clear();
    this.urls.set(key, fresh);
    return fresh;
  }

  async resolve(query: unknown, ifNoneMatch: string | undefined): Promise<ResolveOutcome> {
    const q = parseInput(resolveQuery, query, 'query');
    const target = `sm_${q.sm.replace(/^sm_?/i, '')}`;
    const choice = isTarget(target) ? await this.canaries.resolve(q.model, q.channel, target, q.device) : null;
    const plan = choice?.plan ?? null;
    if (!plan) throw await this.noPlan(q.model, q.channel, `no plan for ${target}${isTarget(target) ? '' : ` (not a target the farm builds: ${TARGETS.join(', ')})`}`);
    if (q.runtime !== undefined) {
      const want = major(q.runtime);
      const have = major(plan.optimizerVersion);
      if (have === null || want !== have) {
        throw await this.noPlan(
          q.model,
          q.channel,
          `the ${target} plan (version ${plan.version}) was built by optimizer ${plan.optimizerVersion}; runtime ${q.runtime} loads plans of major version ${want} only`,
        );
      }
    }
    const etag = planEtag(plan.sha256, plan.version);
    if (matches(ifNoneMatch, etag)) return { status: 304, etag };
    const { url, expiresAt } = await this.presigned(plan.s3Key);
    return {
      status: 200,
      etag,
      body: {
        model: q.model,
        channel: q.channel,
        version: plan.version,
        target: plan.target,
        sha256: plan.sha256,
        size: plan.size,
        precision: plan.precision,
        optimizerVersion: plan.optimizerVersion,
        url,
        expiresAt: new Date(expiresAt).toISOString(),
        ...(choice?.canary ? { canary: choice.canary } : {}),
      },
    };
  }

  /** The slow path (a 404) may take a second query: say what the channel does serve. */
  private async noPlan(model: string, channel: string, why: string): Promise<ApiError> {
    const served = await this.channels.servedTargets(model, channel);
    if (served === null) return new ApiError(404, `model "${model}" has no channel "${channel}"`, { code: 'E_NO_PLAN' });
    const list = served.length ? served.map((s) => `${s.target} (version ${s.version}, optimizer ${s.optimizerVersion})`).join(', ') : 'none';
    return new ApiError(404, `channel "${channel}" of model "${model}": ${why}; targets served: ${list}`, { code: 'E_NO_PLAN' });
  }
}
