import type { Redis } from 'ioredis';
import { DURATION_BUCKETS_S, sharedMetricsKey, type FarmNames } from '../contracts/index.js';

/**
 * Metrics the workers observe (stage and target durations, failures by code)
 * kept as counters in one Redis hash, so every API replica's /metrics shows the
 * farm-wide values whichever worker did the work. Fields:
 *   h|<metric>|<labels json>|<le>   cumulative bucket counts ("+Inf" included)
 *   h|<metric>|<labels json>|sum    and |count
 *   c|<metric>|<labels json>        counters
 */
export type Labels = Record<string, string>;

function labelKey(labels: Labels): string {
  return JSON.stringify(Object.fromEntries(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1))));
}

export async function observeDuration(redis: Redis, farm: FarmNames, metric: string, labels: Labels, seconds: number): Promise<void> {
  if (!Number.isFinite(seconds) || seconds < 0) return;
  const key = sharedMetricsKey(farm);
  const base = `h|${metric}|${labelKey(labels)}|`;
  const tx = redis.multi();
  for (const le of DURATION_BUCKETS_S) if (seconds <= le) tx.hincrby(key, base + le, 1);
  tx.hincrby(key, `${base}+Inf`, 1);
  tx.hincrbyfloat(key, `${base}sum`, seconds);
  tx.hincrby(key, `${base}count`, 1);
  await tx.exec();
}

export async function incrementCounter(redis: Redis, farm: FarmNames, metric: string, labels: Labels, by = 1): Promise<void> {
  await redis.hincrby(sharedMetricsKey(farm), `c|${metric}|${labelKey(labels)}`, by);
}

const HELP: Record<string, string> = {
  planforge_build_stage_duration_seconds: 'Time one optimizer/verification/upload stage of a target build took, by target and stage.',
  planforge_build_target_duration_seconds: 'Time a worker spent on one target build attempt, by target and outcome.',
  planforge_target_failures_total: 'Target build attempts that failed for good, by target and error code.',
};

function escape(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function renderLabels(labels: Labels, extra?: [string, string]): string {
  const all = Object.entries(labels);
  if (extra) all.push(extra);
  return all.length ? `{${all.map(([k, v]) => `${k}="${escape(v)}"`).join(',')}}` : '';
}

/** The shared metrics in Prometheus text exposition format (empty string when none yet). */
export async function renderSharedMetrics(redis: Redis, farm: FarmNames): Promise<string> {
  const fields = await redis.hgetall(sharedMetricsKey(farm));
  const histograms = new Map<string, Map<string, Map<string, number>>>();
  const counters = new Map<string, Map<string, number>>();
  for (const [field, raw] of Object.entries(fields)) {
    const parts = field.split('|');
    const value = Number(raw);
    if (parts[0] === 'h' && parts.length === 4) {
      const [, metric, labels, suffix] = parts;
      const series = histograms.get(metric) ?? new Map<string, Map<string, number>>();
      histograms.set(metric, series);
      const one = series.get(labels) ?? new Map<string, number>();
      series.set(labels, one);
      one.set(suffix, value);
    } else if (parts[0] === 'c' && parts.length === 3) {
      const series = counters.get(parts[1]) ?? new Map<string, number>();
      counters.set(parts[1], series);
      series.set(parts[2], value);
    }
  }
  const out: string[] = [];
  for (const [metric, series] of [...histograms].sort()) {
    out.push(`# HELP ${metric} ${HELP[metric] ?? metric}`, `# TYPE ${metric} histogram`);
    for (const [labelsJson, values] of series) {
      const labels = JSON.parse(labelsJson) as Labels;
      for (const le of [...DURATION_BUCKETS_S.map(String), '+Inf']) {
        out.push(`${metric}_bucket${renderLabels(labels, ['le', le])} ${values.get(le) ?? 0}`);
      }
      out.push(`${metric}_sum${renderLabels(labels)} ${values.get('sum') ?? 0}`, `${metric}_count${renderLabels(labels)} ${values.get('count') ?? 0}`);
    }
  }
  for (const [metric, series] of [...counters].sort()) {
    out.push(`# HELP ${metric} ${HELP[metric] ?? metric}`, `# TYPE ${metric} counter`);
    for (const [labelsJson, value] of series) out.push(`${metric}${renderLabels(JSON.parse(labelsJson) as Labels)} ${value}`);
  }
  return out.length ? `${out.join('\n')}\n` : '';
}
