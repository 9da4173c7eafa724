import { createHash } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import type { Target } from '../../../../libs/contracts/index.js';
import type { ResolvedPlan } from '../../../../libs/registry/index.js';
import { ResolveCacheRepository } from '../repositories/resolve-cache.repository.js';

/** Where a device falls in 0-9999: hash(device id, channel, version), stable across polls. */
export function canaryBucket(deviceId: string, channel: string, version: number): number {
  return createHash('sha256').update(`${deviceId}\n${channel}\n${version}`).digest().readUInt32BE(0) % 10_000;
}

export interface CanaryChoice {
  plan: ResolvedPlan;
  /** Set while a canary watches the channel: which cohort this device is in. */
  canary: { percent: number; cohort: 'canary' | 'stable' } | null;
}

/**
 * Canary-aware resolution: during a canary rollout the channel's pointer is on
 * the new version, but only devices whose bucket is below the canary share get
 * it; the others (and devices that do not say who they are) keep the version it
 * replaced. The channel's state comes from the resolve cache (invalidated by
 * Postgres NOTIFY); the cohort is chosen per request.
 */
@Injectable()
export class CanaryResolver {
  constructor(private readonly resolutions: ResolveCacheRepository) {}

  async resolve(model: string, channel: string, target: Target, deviceId: string | undefined): Promise<CanaryChoice | null> {
    const found = await this.resolutions.resolve(model, channel, target);
    if (!found) return null;
    if (!found.canary || !found.canary.previous) return { plan: found.plan, canary: null };
    const percent = found.canary.bp / 100;
    const inCanary = deviceId !== undefined && canaryBucket(deviceId, channel, found.plan.version) < found.canary.bp;
    return inCanary ? { plan: found.plan, canary: { percent, cohort: 'canary' } } : { plan: found.canary.previous, canary: { percent, cohort: 'stable' } };
  }
}
