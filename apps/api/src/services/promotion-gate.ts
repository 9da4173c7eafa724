import type { PromotionGateConfig } from '../../../../libs/config/index.js';
import type { Target } from '../../../../libs/contracts/index.js';
import type { ChannelPlan } from '../../../../libs/registry/index.js';

/**
 * What the gate reads from a plan:
 * - plans.verification: `passed` (boolean), `maxAbs` or `maxAbsError` (number), `top1` or
 *   `top1Agreement` (a fraction in [0, 1]; values above 1 are read as percent) — the worker's
 *   verifier writes passed/maxAbs/top1;
 * - plans.profile (measured on a GPU): `p99Ms` (or `latencyP99Ms`, `p99`).
 * A number that is missing on either side is not compared.
 */
export interface GateMetrics {
  passed: boolean | null;
  maxAbsError: number | null;
  /** Percent. */
  top1Percent: number | null;
  p99Ms: number | null;
}

function num(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

export function gateMetrics(plan: Pick<ChannelPlan, 'verification' | 'profile'>): GateMetrics {
  const v = plan.verification ?? {};
  const p = plan.profile ?? {};
  const top1 = num(v.top1) ?? num(v.top1Agreement);
  return {
    passed: typeof v.passed === 'boolean' ? v.passed : null,
    maxAbsError: num(v.maxAbs) ?? num(v.maxAbsError),
    top1Percent: top1 === null ? null : top1 <= 1 ? top1 * 100 : top1,
    p99Ms: num(p.p99Ms) ?? num(p.latencyP99Ms) ?? num(p.p99),
  };
}

export interface TargetGateResult {
  target: Target;
  candidateVersion: number;
  currentVersion: number | null;
  candidate: GateMetrics;
  current: GateMetrics | null;
  violations: string[];
}

export interface GateResult {
  passed: boolean;
  thresholds: PromotionGateConfig;
  targets: TargetGateResult[];
}

const fmt = (n: number, digits = 4) => Number(n.toPrecision(digits)).toString();

/** Compares a candidate plan with the plan the channel serves now (if any) for one target. */
export function evaluateTarget(candidate: ChannelPlan, current: ChannelPlan | null, limits: PromotionGateConfig): TargetGateResult {
  const cand = gateMetrics(candidate);
  const cur = current ? gateMetrics(current) : null;
  const violations: string[] = [];
  const t = candidate.target;
  if (cand.passed === false) {
    const details = [
      cand.maxAbsError !== null ? `max abs error ${fmt(cand.maxAbsError)}` : null,
      cand.top1Percent !== null ? `top-1 agreement ${fmt(cand.top1Percent)}%` : null,
    ].filter(Boolean);
    violations.push(`${t}: version ${candidate.version} failed verification${details.length ? ` (${details.join(', ')})` : ''}`);
  }
  if (cur && current) {
    if (cand.top1Percent !== null && cur.top1Percent !== null) {
      const drop = cur.top1Percent - cand.top1Percent;
      if (drop > limits.maxTop1DropPoints) {
        violations.push(
          `${t}: top-1 agreement ${fmt(cand.top1Percent)}% vs ${fmt(cur.top1Percent)}% for version ${current.version} (drop of ${fmt(drop, 3)} points > ${limits.maxTop1DropPoints} allowed)`,
        );
      }
    }
    if (cand.maxAbsError !== null && cur.maxAbsError !== null) {
      // A current error of 0 would make any error an infinite ratio: compare against a floor.
      const ratio = cand.maxAbsError / Math.max(cur.maxAbsError, 1e-9);
      if (ratio > limits.maxErrorRatio) {
        violations.push(
          `${t}: max abs error ${fmt(cand.maxAbsError)} vs ${fmt(cur.maxAbsError)} for version ${current.version} (×${fmt(ratio, 3)} > ×${limits.maxErrorRatio} allowed)`,
        );
      }
    }
    if (cand.p99Ms !== null && cur.p99Ms !== null && cur.p99Ms > 0) {
      const regression = ((cand.p99Ms - cur.p99Ms) / cur.p99Ms) * 100;
      if (regression > limits.maxLatencyRegressionPct) {
        violations.push(
          `${t}: p99 latency ${fmt(cand.p99Ms)} ms vs ${fmt(cur.p99Ms)} ms for version ${current.version} (+${fmt(regression, 3)}% > +${limits.maxLatencyRegressionPct}% allowed)`,
        );
      }
    }
  }
  return { target: t, candidateVersion: candidate.version, currentVersion: current?.version ?? null, candidate: cand, current: cur, violations };
}
