/**
 * The fixed latency histogram every telemetry bucket row carries: log-spaced
 * buckets (8 per doubling, so ~9 % wide) from 10 µs to ~335 s. Histograms of
 * any window merge by element-wise addition, and percentiles read from the sum
 * are within half a bucket (~4.5 %) of the truth, well under the regression
 * thresholds (typically 10-20 %) they are compared against.
 */
export const HIST_MIN_MS = 0.01;
export const HIST_PER_DOUBLING = 8;
export const HIST_BUCKETS = 200;
const RATIO = 2 ** (1 / HIST_PER_DOUBLING);
const LOG_RATIO = Math.log(RATIO);

/** Bucket i holds latencies in [lower(i), lower(i + 1)); bucket 0 also holds anything smaller, the last anything larger. */
export function bucketIndex(ms: number): number {
  if (!(ms > HIST_MIN_MS)) return 0;
  const i = Math.floor(Math.log(ms / HIST_MIN_MS) / LOG_RATIO + 1e-9);
  return Math.min(Math.max(i, 0), HIST_BUCKETS - 1);
}

export function bucketLower(i: number): number {
  return HIST_MIN_MS * RATIO ** i;
}

/** Sparse form used while aggregating in memory: bucket index → count. */
export type SparseHistogram = Map<number, number>;

export function addTo(h: SparseHistogram, ms: number, count: number): void {
  if (count <= 0) return;
  const i = bucketIndex(ms);
  h.set(i, (h.get(i) ?? 0) + count);
}

export function mergeInto(into: SparseHistogram, from: SparseHistogram): void {
  for (const [i, c] of from) into.set(i, (into.get(i) ?? 0) + c);
}

export function toDense(h: SparseHistogram): number[] {
  const out = new Array<number>(HIST_BUCKETS).fill(0);
  for (const [i, c] of h) out[i] += c;
  return out;
}

/**
 * A report that only gives p50 and p99 of `n` requests becomes a histogram that
 * keeps both when merged with others: half the requests at p50, 2 % at p99
 * (so the 99th percentile rank falls among them) and the rest between.
 */
export function fromPercentiles(n: number, p50Ms: number, p99Ms: number): SparseHistogram {
  const h: SparseHistogram = new Map();
  if (n <= 0) return h;
  const high = Math.min(n, Math.max(1, Math.ceil(n * 0.02)));
  const low = Math.min(n - high, Math.ceil(n * 0.5));
  addTo(h, p50Ms, low);
  addTo(h, Math.sqrt(p50Ms * p99Ms), n - high - low);
  addTo(h, p99Ms, high);
  return h;
}

/**
 * A device's own histogram ({bucketsMs: ascending upper bounds, counts}, the
 * counts optionally one longer for the overflow above the last bound) re-bucketed
 * at each bucket's geometric middle.
 */
export function fromDeviceHistogram(bucketsMs: number[], counts: number[]): SparseHistogram {
  const h: SparseHistogram = new Map();
  for (let i = 0; i < counts.length; i++) {
    let at: number;
    if (i < bucketsMs.length) {
      const upper = bucketsMs[i];
      const lower = i > 0 ? bucketsMs[i - 1] : upper / 2;
      at = Math.sqrt(Math.max(lower, 1e-6) * upper);
    } else at = bucketsMs[bucketsMs.length - 1] * 1.5;
    addTo(h, at, counts[i]);
  }
  return h;
}

/** The q-quantile (0-1) of a dense histogram, interpolated geometrically inside its bucket; null when empty. */
export function quantile(dense: number[], q: number): number | null {
  const total = dense.reduce((a, b) => a + b, 0);
  if (total <= 0) return null;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (let i = 0; i < dense.length; i++) {
    const c = dense[i];
    if (c <= 0) continue;
    if (seen + c >= rank) {
      // Where the rank falls among this bucket's c samples, spread evenly in log space.
      const within = (rank - seen - 0.5) / c;
      return bucketLower(i) * RATIO ** Math.min(Math.max(within, 0), 1);
    }
    seen += c;
  }
  return bucketLower(dense.length - 1);
}
