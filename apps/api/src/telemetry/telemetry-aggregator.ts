import type { Target } from '../../../../libs/contracts/index.js';
import type { TelemetryBucketDelta } from '../../../../libs/registry/index.js';
import { mergeInto, toDense, type SparseHistogram } from './telemetry-histogram.js';

interface PendingBucket {
  channelId: string;
  target: Target;
  version: number;
  bucketStart: number;
  reports: number;
  requests: number;
  errors: number;
  windowMs: number;
  latencyCount: number;
  hist: SparseHistogram;
}

export interface BucketContribution {
  channelId: string;
  target: Target;
  version: number;
  /** Epoch ms, already floored to the bucket width. */
  bucketStart: number;
  requests: number;
  errors: number;
  windowMs: number;
  hist: SparseHistogram;
}

/**
 * Sums reports per (channel, target, version, bucket) in memory. Thousands of
 * devices reporting every few seconds collapse into one row update per series
 * and bucket per flush; what is lost if the process dies is at most one flush
 * interval of telemetry.
 */
export class TelemetryAggregator {
  private pending = new Map<string, PendingBucket>();

  get size(): number {
    return this.pending.size;
  }

  add(c: BucketContribution): void {
    const key = `${c.channelId}|${c.target}|${c.version}|${c.bucketStart}`;
    let b = this.pending.get(key);
    if (!b) {
      b = { channelId: c.channelId, target: c.target, version: c.version, bucketStart: c.bucketStart, reports: 0, requests: 0, errors: 0, windowMs: 0, latencyCount: 0, hist: new Map() };
      this.pending.set(key, b);
    }
    b.reports += 1;
    b.requests += c.requests;
    b.errors += c.errors;
    b.windowMs += c.windowMs;
    for (const n of c.hist.values()) b.latencyCount += n;
    mergeInto(b.hist, c.hist);
  }

  /** Moves another aggregator's sums into this one (a failed flush is put back). */
  absorb(other: TelemetryAggregator): void {
    for (const [key, b] of other.pending) {
      const mine = this.pending.get(key);
      if (!mine) {
        this.pending.set(key, b);
        continue;
      }
      mine.reports += b.reports;
      mine.requests += b.requests;
      mine.errors += b.errors;
      mine.windowMs += b.windowMs;
      mine.latencyCount += b.latencyCount;
      mergeInto(mine.hist, b.hist);
    }
  }

  /** Hands the sums over and starts empty. */
  take(): TelemetryAggregator {
    const out = new TelemetryAggregator();
    out.pending = this.pending;
    this.pending = new Map();
    return out;
  }

  deltas(): TelemetryBucketDelta[] {
    return [...this.pending.values()].map((b) => ({
      channelId: b.channelId,
      target: b.target,
      version: b.version,
      bucketStart: new Date(b.bucketStart),
      reports: b.reports,
      requests: b.requests,
      errors: b.errors,
      windowMs: b.windowMs,
      latencyCount: b.latencyCount,
      latencyHist: toDense(b.hist),
    }));
  }
}
