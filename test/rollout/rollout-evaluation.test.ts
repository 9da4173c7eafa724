/** The watcher's judgement, without a database: cohorts, checks, decisions and their reasons. */
import type { RolloutRecord, TelemetryBucketRow } from '../../libs/registry/index.js';
import { evaluateRollout } from '../../apps/api/src/rollout/rollout-evaluation.js';
import { fromPercentiles, toDense } from '../../apps/api/src/telemetry/telemetry-histogram.js';

const started = new Date('2026-11-25T10:00:30Z');

function rollout(overrides: Partial<RolloutRecord> = {}): RolloutRecord {
  return {
    id: 'r1',
    channelId: 'c1',
    version: 2,
    fromVersions: { sm_86: 1 },
    targets: ['sm_86'],
    canaryBp: null,
    state: 'watching',
    policy: { watchSeconds: 600, minRequests: 1000, baselineSeconds: 3600, maxP99Regression: 0.2, maxErrorRate: 0.01, maxThroughputDrop: null, canaryPercent: null },
    startedAt: started,
    watchUntil: new Date(started.getTime() + 600_000),
    decidedAt: null,
    decision: null,
    reason: null,
    createdBy: 'admin',
    ...overrides,
  };
}

function row(version: number, at: string, requests: number, errors: number, p99Ms: number | null, target = 'sm_86'): TelemetryBucketRow {
  const hist = p99Ms === null ? new Array(200).fill(0) : toDense(fromPercentiles(requests, p99Ms / 2, p99Ms));
  return { target: target as any, version, bucketStart: new Date(at), reports: 10, requests, errors, windowMs: 50_000, latencyCount: p99Ms === null ? 0 : requests, latencyHist: hist };
}

describe('evaluateRollout', () => {
  it('waits below minRequests, whatever the figures', () => {
    const e = evaluateRollout(rollout(), [row(1, '2026-11-25T09:50:00Z', 5000, 0, 8), row(2, '2026-11-25T10:01:00Z', 999, 999, 80)], 60, new Date('2026-11-25T10:20:00Z'));
    expect(e.decision).toEqual({ action: 'wait', reason: 'waiting for requests: 999 of 1,000' });
  });

  it('ignores the old version before the baseline window and the new version before the promotion bucket', () => {
    const rows = [
      row(1, '2026-11-25T08:00:00Z', 100_000, 0, 2), // before baselineSeconds: not part of the baseline
      row(1, '2026-11-25T09:30:00Z', 5000, 0, 8),
      row(2, '2026-11-25T09:59:00Z', 100_000, 100_000, 50), // v2 before the promotion's bucket
      row(2, '2026-11-25T10:00:00Z', 3000, 0, 8.5),
    ];
    const e = evaluateRollout(rollout(), rows, 60, new Date('2026-11-25T10:05:00Z'));
    expect(e.scopes[0].candidate.requests).toBe(3000);
    expect(e.scopes[0].baseline.requests).toBe(5000);
    expect(e.decision.action).toBe('wait');
    expect(e.windowRemainingSeconds).toBe(330);
    const done = evaluateRollout(rollout(), rows, 60, new Date('2026-11-25T10:11:00Z'));
    expect(done.decision.action).toBe('complete');
  });

  it('completes without a baseline on the checks that need none, saying what was not compared', () => {
    const e = evaluateRollout(rollout(), [row(2, '2026-11-25T10:01:00Z', 2000, 2, 9)], 60, new Date('2026-11-25T10:11:00Z'));
    expect(e.decision.action).toBe('complete');
    expect(e.scopes[0].checks.map((c) => [c.name, c.status])).toEqual([
      ['error_rate', 'ok'],
      ['p99_regression', 'no_baseline'],
    ]);
  });

  it('rolls back on the first breach with the figures in the reason', () => {
    const e = evaluateRollout(rollout(), [row(1, '2026-11-25T09:50:00Z', 5000, 0, 8), row(2, '2026-11-25T10:01:00Z', 5000, 0, 12)], 60, new Date('2026-11-25T10:02:00Z'));
    expect(e.decision).toMatchObject({ action: 'rollback', check: 'p99_regression', scope: 'all' });
    expect((e.decision as any).reason).toMatch(/^auto: p99 \+\d+% \(1[12]\.\d ms vs [78]\.\d ms over 5,000 requests\)$/);
  });

  it('compares a canary with its old cohort over the same window only', () => {
    const canary = rollout({ canaryBp: 1000 });
    const rows = [row(1, '2026-11-25T09:50:00Z', 50_000, 0, 4), row(1, '2026-11-25T10:00:00Z', 9000, 0, 8), row(2, '2026-11-25T10:00:00Z', 1000, 0, 8.3)];
    const e = evaluateRollout(canary, rows, 60, new Date('2026-11-25T10:11:00Z'));
    expect(e.scopes[0].baseline.requests).toBe(9000);
    expect(e.decision.action).toBe('complete');
  });
});
