import { z } from 'zod';
import type { RolloutThresholds } from '../../../../libs/registry/index.js';

/** What a channel without a policy uses when a promotion asks for a canary. */
export const DEFAULT_ROLLOUT_THRESHOLDS: RolloutThresholds = {
  watchSeconds: 600,
  minRequests: 1000,
  baselineSeconds: 3600,
  maxP99Regression: 0.2,
  maxErrorRate: 0.01,
  maxThroughputDrop: null,
  canaryPercent: null,
};

/** Canary shares are in hundredths of a percent (basis points of devices). */
export const canaryPercent = z
  .number()
  .min(0.01)
  .max(99.99)
  .refine((v) => Math.abs(Math.round(v * 100) - v * 100) < 1e-6, { message: 'at most two decimals (shares are in hundredths of a percent)' });

export function policyBody(allowInsecureHttp: boolean) {
  const url = z
    .string()
    .max(2000)
    .refine(
      (v) => {
        try {
          const u = new URL(v);
          return u.protocol === 'https:' || (allowInsecureHttp && u.protocol === 'http:');
        } catch {
          return false;
        }
      },
      { message: allowInsecureHttp ? 'expected an http(s) URL' : 'expected an https URL (http needs WEBHOOK_ALLOW_INSECURE_HTTP=true)' },
    );
  const d = DEFAULT_ROLLOUT_THRESHOLDS;
  return z
    .object({
      watchSeconds: z.number().int().min(1).max(7 * 86_400).default(d.watchSeconds),
      minRequests: z.number().int().min(1).max(1_000_000_000).default(d.minRequests),
      baselineSeconds: z.number().int().min(1).max(7 * 86_400).default(d.baselineSeconds),
      maxP99Regression: z.number().min(0).max(100).nullable().default(d.maxP99Regression),
      maxErrorRate: z.number().min(0).max(1).nullable().default(d.maxErrorRate),
      maxThroughputDrop: z.number().min(0).max(1).nullable().default(d.maxThroughputDrop),
      canaryPercent: canaryPercent.nullable().default(d.canaryPercent),
      webhook: z.object({ url, secret: z.string().min(16, 'at least 16 characters').max(256) }).strict().nullable().default(null),
    })
    .strict();
}
