import type { DataSource, EntityManager } from 'typeorm';
import type { Target } from '../../contracts/index.js';

/** Sums of the reports that fell in one bucket of one series (channel, target, version). */
export interface TelemetryBucketDelta {
  channelId: string;
  target: Target;
  version: number;
  bucketStart: Date;
  reports: number;
  requests: number;
  errors: number;
  /** Σ report window lengths: device-time, so throughput per device can be compared across cohorts of any size. */
  windowMs: number;
  latencyCount: number;
  /** Dense, fixed-length latency histogram (the bucket layout belongs to the caller). */
  latencyHist: number[];
}

export interface TelemetryBucketRow extends Omit<TelemetryBucketDelta, 'channelId'> {}

/** A channel telemetry may be reported for, and the highest version its model has. */
export interface TelemetryChannel {
  channelId: string;
  modelId: string;
  maxVersion: number;
}

/** What an Idempotency-Key'd telemetry request found: written now, written before (the first answer), or another request's key. */
export type TelemetryOnce = { state: 'added' } | { state: 'replay'; response: Record<string, unknown> } | { state: 'conflict' };

/** Rows per statement: 10 parameters each, well below Postgres' 65,535. */
const UPSERT_CHUNK = 500;

/**
 * Fleet telemetry, stored aggregated: one row per (channel, target, version,
 * bucket), whose counters grow by upsert and whose latency histogram is added
 * element-wise, so any window's percentiles can be computed from the sums.
 */
export class TelemetryRepository {
  constructor(private readonly ds: DataSource) {}

  async channel(modelName: string, channel: string): Promise<TelemetryChannel | null> {
    const rows: { channel_id: string; model_id: string; max_version: number | null }[] = await this.ds.query(
      `SELECT c.id AS channel_id, m.id AS model_id, (SELECT max(version) FROM model_versions v WHERE v.model_id = m.id) AS max_version
       FROM models m JOIN channels c ON c.model_id = m.id AND c.name = $2 WHERE m.name = $1`,
      [modelName, channel],
    );
    return rows.length ? { channelId: rows[0].channel_id, modelId: rows[0].model_id, maxVersion: rows[0].max_version ?? 0 } : null;
  }

  /**
   * Adds the deltas to their rows (created on first use). Rows are written in key
   * order, so concurrent flushes from several API instances lock them in the same
   * order and cannot deadlock. Keys must be unique within one call.
   */
  async add(deltas: TelemetryBucketDelta[], em?: EntityManager): Promise<number> {
    const q = em ?? this.ds;
    const sorted = [...deltas].sort((a, b) =>
      a.channelId !== b.channelId ? (a.channelId < b.channelId ? -1 : 1)
      : a.target !== b.target ? (a.target < b.target ? -1 : 1)
      : a.version !== b.version ? a.version - b.version
      : a.bucketStart.getTime() - b.bucketStart.getTime(),
    );
    for (let i = 0; i < sorted.length; i += UPSERT_CHUNK) {
      const chunk = sorted.slice(i, i + UPSERT_CHUNK);
      const params: unknown[] = [];
      const values = chunk.map((d) => {
        params.push(d.channelId, d.target, d.version, d.bucketStart, d.reports, d.requests, d.errors, d.windowMs, d.latencyCount, `{${d.latencyHist.join(',')}}`);
        const n = params.length;
        return `($${n - 9}::uuid, $${n - 8}, $${n - 7}::int, $${n - 6}::timestamptz, $${n - 5}::bigint, $${n - 4}::bigint, $${n - 3}::bigint, $${n - 2}::bigint, $${n - 1}::bigint, $${n}::bigint[])`;
      });
      await q.query(
        `INSERT INTO telemetry_buckets AS t (channel_id, target, version, bucket_start, reports, requests, errors, window_ms, latency_count, latency_hist)
         VALUES ${values.join(', ')}
         ON CONFLICT (channel_id, target, version, bucket_start) DO UPDATE SET
           reports = t.reports + EXCLUDED.reports,
           requests = t.requests + EXCLUDED.requests,
           errors = t.errors + EXCLUDED.errors,
           window_ms = t.window_ms + EXCLUDED.window_ms,
           latency_count = t.latency_count + EXCLUDED.latency_count,
           latency_hist = (SELECT array_agg(a + b ORDER BY i) FROM unnest(t.latency_hist, EXCLUDED.latency_hist) WITH ORDINALITY AS u(a, b, i)),
           updated_at = now()`,
        params,
      );
    }
    return sorted.length;
  }

  /**
   * The buckets of one channel for the given versions, each from its own start
   * (inclusive), for the rollout watcher's figures.
   */
  async buckets(channelId: string, series: { version: number; since: Date }[]): Promise<TelemetryBucketRow[]> {
    if (!series.length) return [];
    const params: unknown[] = [channelId];
    const clauses = series.map((s) => {
      params.push(s.version, s.since);
      return `(version = $${params.length - 1} AND bucket_start >= $${params.length})`;
    });
    const rows: {
      target: Target;
      version: number;
      bucket_start: Date;
      reports: string;
      requests: string;
      errors: string;
      window_ms: string;
      latency_count: string;
      latency_hist: string[];
    }[] = await this.ds.query(
      `SELECT target, version, bucket_start, reports, requests, errors, window_ms, latency_count, latency_hist
       FROM telemetry_buckets WHERE channel_id = $1 AND (${clauses.join(' OR ')})`,
      params,
    );
    return rows.map((r) => ({
      target: r.target,
      version: r.version,
      bucketStart: r.bucket_start,
      reports: Number(r.reports),
      requests: Number(r.requests),
      errors: Number(r.errors),
      windowMs: Number(r.window_ms),
      latencyCount: Number(r.latency_count),
      latencyHist: r.latency_hist.map(Number),
    }));
  }

  /** Deletes buckets that started before `before`; returns how many. */
  async prune(before: Date): Promise<number> {
    const [, count]: [unknown, number] = await this.ds.query(`DELETE FROM telemetry_buckets WHERE bucket_start < $1`, [before]);
    return count ?? 0;
  }

  /** Rows and on-disk size (table + indexes + TOAST) of the telemetry table, for benchmarks and capacity planning. */
  async footprint(): Promise<{ rows: number; bytes: number }> {
    const [r]: { rows: string; bytes: string }[] = await this.ds.query(
      `SELECT (SELECT count(*) FROM telemetry_buckets) AS rows, pg_total_relation_size('telemetry_buckets') AS bytes`,
    );
    return { rows: Number(r.rows), bytes: Number(r.bytes) };
  }

  /**
   * Exactly once per (scope, Idempotency-Key): the key (kept 24 hours, in the same table
   * as build submissions' keys) and the deltas commit in one transaction, so a reporter
   * that retries after a lost answer never counts its reports twice, and a crash never
   * leaves a key without its data.
   */
  async addOnce(scope: string, key: string, requestHash: string, deltas: TelemetryBucketDelta[], response: Record<string, unknown>): Promise<TelemetryOnce> {
    return this.ds.transaction(async (em) => {
      await em.query(`DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND created_at < now() - interval '24 hours'`, [scope, key]);
      const inserted: unknown[] = await em.query(
        `INSERT INTO idempotency_keys (scope, key, request_hash, response) VALUES ($1, $2, $3, $4) ON CONFLICT (scope, key) DO NOTHING RETURNING key`,
        [scope, key, requestHash, JSON.stringify(response)],
      );
      if (!inserted.length) {
        // The first request holds the row lock until it commits: this waits for it, then sees its outcome.
        const rows: { request_hash: string; response: Record<string, unknown> | null }[] = await em.query(
          `SELECT request_hash, response FROM idempotency_keys WHERE scope = $1 AND key = $2 FOR SHARE`,
          [scope, key],
        );
        if (!rows.length) return this.addOnce(scope, key, requestHash, deltas, response);
        if (rows[0].request_hash !== requestHash || !rows[0].response) return { state: 'conflict' };
        return { state: 'replay', response: rows[0].response };
      }
      await this.add(deltas, em);
      return { state: 'added' };
    });
  }
}
