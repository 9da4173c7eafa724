import type { Target } from '../../../../libs/contracts/index.js';
import type { RolloutRecord, RolloutThresholds, TelemetryBucketRow } from '../../../../libs/registry/index.js';
import { HIST_BUCKETS, quantile } from '../telemetry/telemetry-histogram.js';

/** Sums over a cohort's buckets. */
export interface CohortSums {
  reports: number;
  requests: number;
  errors: number;
  windowMs: number;
  latencyCount: number;
  hist: number[];
}

export interface CohortFigures {
  version: number | null;
  reports: number;
  requests: number;
  errors: number;
  errorRate: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  /** Requests per device-second (Σ requests / Σ report window lengths). */
  throughput: number | null;
}

/** A p99 read from fewer latency samples than this says nothing: the check waits (or has no baseline). */
export const MIN_LATENCY_SAMPLES = 100;

export type CheckName = 'p99_regression' | 'error_rate' | 'throughput_drop';

export interface Check {
  name: CheckName;
  /** The policy's threshold (a fraction). */
  limit: number;
  /** Relative change (p99, throughput) or the rate (errors); null when not measurable yet. */
  value: number | null;
  status: 'ok' | 'breach' | 'waiting' | 'no_baseline';
  detail: string;
}

export interface ScopeVerdict {
  /** 'all' sums every target of the rollout; a target is judged on its own too. */
  scope: 'all' | Target;
  candidate: CohortFigures;
  baseline: CohortFigures;
  /** The candidate served at least minRequests: its checks count. */
  judged: boolean;
  checks: Check[];
}

export type RolloutDecision =
  | { action: 'rollback'; check: CheckName; scope: 'all' | Target; reason: string }
  | { action: 'complete'; reason: string }
  | { action: 'wait'; reason: string };

export interface RolloutEvaluation {
  at: string;
  windowRemainingSeconds: number;
  scopes: ScopeVerdict[];
  decision: RolloutDecision;
}

function emptySums(): CohortSums {
  return { reports: 0, requests: 0, errors: 0, windowMs: 0, latencyCount: 0, hist: new Array<number>(HIST_BUCKETS).fill(0) };
}

function addRow(s: CohortSums, r: TelemetryBucketRow): void {
  s.reports += r.reports;
  s.requests += r.requests;
  s.errors += r.errors;
  s.windowMs += r.windowMs;
  s.latencyCount += r.latencyCount;
  for (let i = 0; i < Math.min(s.hist.length, r.latencyHist.length); i++) s.hist[i] += r.latencyHist[i];
}

function figures(s: CohortSums, version: number | null): CohortFigures {
  return {
    version,
    reports: s.reports,
    requests: s.requests,
    errors: s.errors,
    errorRate: s.requests > 0 ? s.errors / s.requests : null,
    p50Ms: quantile(s.hist, 0.5),
    p99Ms: quantile(s.hist, 0.99),
    throughput: s.windowMs > 0 ? s.requests / (s.windowMs / 1000) : null,
  };
}

const count = (n: number) => n.toLocaleString('en-US');
const ms = (v: number) => `${v < 1 ? v.toFixed(2) : v.toFixed(1)} ms`;
const pct = (f: number, digits = 1) => `${(f * 100).toFixed(digits)}%`;

/** Where the watcher reads each cohort from: the new version since the promotion, the old one since the baseline start. */
export function cohortWindows(r: RolloutRecord, bucketSeconds: number): { candidateSince: Date; baselineSince: Date } {
  const width = bucketSeconds * 1000;
  const startBucket = new Date(Math.floor(r.startedAt.getTime() / width) * width);
  // A canary's old cohort runs beside the new one: same window. A full rollout's
  // old version is judged on what it did before the promotion (and its stragglers).
  const baselineSince = r.canaryBp !== null ? startBucket : new Date(r.startedAt.getTime() - r.policy.baselineSeconds * 1000);
  return { candidateSince: startBucket, baselineSince };
}

function judgeScope(scope: 'all' | Target, cand: CohortSums, base: CohortSums, versions: { candidate: number; baseline: number | null }, p: RolloutThresholds): ScopeVerdict {
  const candidate = figures(cand, versions.candidate);
  const baseline = figures(base, versions.baseline);
  const judged = cand.requests >= p.minRequests;
  const baseEnough = base.requests >= p.minRequests;
  const over = `over ${count(cand.requests)} requests`;
  const checks: Check[] = [];
  if (p.maxErrorRate !== null) {
    const rate = candidate.errorRate;
    const breach = judged && rate !== null && rate > p.maxErrorRate;
    checks.push({
      name: 'error_rate',
      limit: p.maxErrorRate,
      value: rate,
      status: !judged ? 'waiting' : breach ? 'breach' : 'ok',
      detail: rate === null ? 'no requests yet' : `error rate ${pct(rate)} ${breach ? '>' : '<='} ${pct(p.maxErrorRate)} ${over}`,
    });
  }
  if (p.maxP99Regression !== null) {
    const a = candidate.p99Ms;
    const b = baseline.p99Ms;
    if (!baseEnough || b === null || base.latencyCount < MIN_LATENCY_SAMPLES) {
      checks.push({
        name: 'p99_regression',
        limit: p.maxP99Regression,
        value: null,
        status: 'no_baseline',
        detail: `baseline has ${count(base.requests)} requests, ${count(base.latencyCount)} with latency (needs ${count(p.minRequests)} and ${MIN_LATENCY_SAMPLES})`,
      });
    } else if (!judged || a === null || cand.latencyCount < MIN_LATENCY_SAMPLES) {
      checks.push({ name: 'p99_regression', limit: p.maxP99Regression, value: null, status: 'waiting', detail: `${count(cand.requests)} of ${count(p.minRequests)} requests` });
    } else {
      const change = a / b - 1;
      const breach = change > p.maxP99Regression;
      const rounded = Math.round(change * 100);
      checks.push({
        name: 'p99_regression',
        limit: p.maxP99Regression,
        value: change,
        status: breach ? 'breach' : 'ok',
        detail: `p99 ${rounded >= 0 ? '+' : '-'}${Math.abs(rounded)}% (${ms(a)} vs ${ms(b)} ${over})`,
      });
    }
  }
  if (p.maxThroughputDrop !== null) {
    const a = candidate.throughput;
    const b = baseline.throughput;
    if (!baseEnough || b === null || b === 0) {
      checks.push({ name: 'throughput_drop', limit: p.maxThroughputDrop, value: null, status: 'no_baseline', detail: `baseline has ${count(base.requests)} requests` });
    } else if (!judged || a === null) {
      checks.push({ name: 'throughput_drop', limit: p.maxThroughputDrop, value: null, status: 'waiting', detail: `${count(cand.requests)} of ${count(p.minRequests)} requests` });
    } else {
      const drop = 1 - a / b;
      const breach = drop > p.maxThroughputDrop;
      checks.push({
        name: 'throughput_drop',
        limit: p.maxThroughputDrop,
        value: drop,
        status: breach ? 'breach' : 'ok',
        detail: `throughput ${Math.round(drop * 100) > 0 ? '-' : '+'}${Math.abs(Math.round(drop * 100))}% (${a.toFixed(1)} vs ${b.toFixed(1)} requests/device-s ${over})`,
      });
    }
  }
  return { scope, candidate, baseline, judged, checks };
}

/**
 * Judges a watching rollout from its telemetry buckets: the candidate cohort (the
 * new version since the promotion) against the baseline (the version each target
 * had before: a canary's old cohort over the same window, or for a full rollout
 * the old version from baselineSeconds before the promotion on). A breach in any
 * judged scope rolls back; the window passing with enough requests and no breach
 * completes; anything else waits.
 */
export function evaluateRollout(r: RolloutRecord, rows: TelemetryBucketRow[], bucketSeconds: number, now = new Date()): RolloutEvaluation {
  const { candidateSince, baselineSince } = cohortWindows(r, bucketSeconds);
  const cand = new Map<Target, CohortSums>();
  const base = new Map<Target, CohortSums>();
  const all = { cand: emptySums(), base: emptySums() };
  for (const t of r.targets) {
    cand.set(t, emptySums());
    base.set(t, emptySums());
  }
  for (const row of rows) {
    if (!cand.has(row.target)) continue;
    if (row.version === r.version && row.bucketStart >= candidateSince) {
      addRow(cand.get(row.target)!, row);
      addRow(all.cand, row);
    } else if (row.version === r.fromVersions[row.target] && row.bucketStart >= baselineSince) {
      addRow(base.get(row.target)!, row);
      addRow(all.base, row);
    }
  }
  const p = r.policy;
  const fromAll = [...new Set(r.targets.map((t) => r.fromVersions[t]).filter((v): v is number => v !== undefined))];
  const scopes: ScopeVerdict[] = [judgeScope('all', all.cand, all.base, { candidate: r.version, baseline: fromAll.length === 1 ? fromAll[0] : null }, p)];
  if (r.targets.length > 1) {
    for (const t of r.targets) scopes.push(judgeScope(t, cand.get(t)!, base.get(t)!, { candidate: r.version, baseline: r.fromVersions[t] ?? null }, p));
  }
  const remaining = Math.max(0, Math.ceil((r.watchUntil.getTime() - now.getTime()) / 1000));
  let decision: RolloutDecision | null = null;
  for (const s of scopes) {
    const breach = s.judged ? s.checks.find((c) => c.status === 'breach') : undefined;
    if (breach) {
      decision = { action: 'rollback', check: breach.name, scope: s.scope, reason: `auto: ${breach.detail}${s.scope !== 'all' ? ` on ${s.scope}` : ''}` };
      break;
    }
  }
  if (!decision) {
    const overall = scopes[0];
    if (!overall.judged) decision = { action: 'wait', reason: `waiting for requests: ${count(overall.candidate.requests)} of ${count(p.minRequests)}` };
    else if (remaining > 0) decision = { action: 'wait', reason: `healthy so far; watch window ends in ${remaining} s` };
    else {
      const summary = overall.checks.filter((c) => c.status === 'ok').map((c) => c.detail);
      decision = { action: 'complete', reason: `watch window passed cleanly over ${count(overall.candidate.requests)} requests${summary.length ? `: ${summary.join('; ')}` : ''}` };
    }
  }
  return { at: now.toISOString(), windowRemainingSeconds: remaining, scopes, decision };
}
