import { z } from 'zod';
import { MODEL_NAME_PATTERN, TARGETS, isTarget, type Target } from '../../../../libs/contracts/index.js';
import { CHANNEL_NAME_PATTERN } from '../../../../libs/registry/index.js';
import type { TelemetryConfig } from '../../../../libs/config/index.js';
import type { FieldIssue } from '../errors/api.error.js';

/** The longest window one report may cover: longer ones would smear a regression over an hour of good data. */
export const MAX_WINDOW_MS = 3_600_000;
/** Per report: a device serving more than this in one window is misreporting. */
const MAX_REQUESTS = 1_000_000_000;
const MAX_LATENCY_MS = 3_600_000;

/** ISO 8601 with an offset, or epoch milliseconds. */
const instant = z
  .union([z.number().int().min(0).max(8.64e15), z.iso.datetime({ offset: true, message: 'expected an ISO 8601 time with an offset, or epoch milliseconds' })])
  .transform((v) => (typeof v === 'number' ? v : Date.parse(v)));

/** "sm_86", "sm86" or "86", like /v1/resolve. */
const target = z
  .string()
  .max(8)
  .transform((v) => `sm_${v.replace(/^sm_?/i, '')}`)
  .refine(isTarget, { message: `expected one of ${TARGETS.join(', ')}` })
  .transform((v) => v as Target);

const latencyMs = z.number().positive().max(MAX_LATENCY_MS);

export const telemetryReportSchema = z
  .object({
    model: z.string().regex(MODEL_NAME_PATTERN, 'expected a model name'),
    channel: z.string().regex(CHANNEL_NAME_PATTERN, 'expected a channel name'),
    target,
    version: z.number().int().min(1).max(1_000_000),
    deviceId: z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, 'expected 1-128 characters of [A-Za-z0-9._:-]'),
    window: z.object({ start: instant, end: instant }).strict(),
    requests: z.number().int().min(0).max(MAX_REQUESTS),
    errors: z.number().int().min(0).max(MAX_REQUESTS),
    latency: z.object({ p50Ms: latencyMs, p99Ms: latencyMs }).strict().optional(),
    histogram: z
      .object({
        bucketsMs: z.array(latencyMs).min(1).max(64),
        counts: z.array(z.number().int().min(0).max(MAX_REQUESTS)).min(1).max(65),
      })
      .strict()
      .optional(),
  })
  .strict();

export type TelemetryReport = z.output<typeof telemetryReportSchema>;

/** Checks across fields and against the clock; issues are relative to the report. */
function crossCheck(r: TelemetryReport, cfg: TelemetryConfig, now: number): FieldIssue[] {
  const issues: FieldIssue[] = [];
  const { start, end } = r.window;
  if (end > now + cfg.maxClockSkewSeconds * 1000) {
    issues.push({ field: 'window.end', message: `is ${Math.round((end - now) / 1000)} s in the future (clock skew allowed: ${cfg.maxClockSkewSeconds} s)` });
  }
  if (start < now - cfg.maxAgeSeconds * 1000) {
    issues.push({ field: 'window.start', message: `is ${Math.round((now - start) / 1000)} s old (at most ${cfg.maxAgeSeconds} s)` });
  }
  if (end < start) issues.push({ field: 'window.end', message: 'is before window.start' });
  else if (end - start > MAX_WINDOW_MS) issues.push({ field: 'window', message: `covers ${Math.round((end - start) / 1000)} s (at most ${MAX_WINDOW_MS / 1000} s)` });
  if (r.errors > r.requests) issues.push({ field: 'errors', message: `${r.errors} errors out of ${r.requests} requests` });
  if (r.latency && r.histogram) issues.push({ field: 'histogram', message: 'send latency percentiles or a histogram, not both' });
  if (r.latency && r.latency.p99Ms < r.latency.p50Ms) issues.push({ field: 'latency.p99Ms', message: `${r.latency.p99Ms} is below p50Ms ${r.latency.p50Ms}` });
  if (r.histogram) {
    const { bucketsMs, counts } = r.histogram;
    if (bucketsMs.some((b, i) => i > 0 && b <= bucketsMs[i - 1])) issues.push({ field: 'histogram.bucketsMs', message: 'must be strictly ascending upper bounds' });
    if (counts.length !== bucketsMs.length && counts.length !== bucketsMs.length + 1) {
      issues.push({ field: 'histogram.counts', message: `has ${counts.length} entries for ${bucketsMs.length} buckets (expected as many, or one more for the overflow)` });
    }
    const sampled = counts.reduce((a, b) => a + b, 0);
    if (sampled > r.requests) issues.push({ field: 'histogram.counts', message: `count ${sampled} more requests than the ${r.requests} reported` });
  }
  return issues;
}

export type ParsedTelemetry = { ok: true; reports: TelemetryReport[] } | { ok: false; errors: FieldIssue[] };

/**
 * One report (an object) or a batch (an array of at most `maxBatch`). Fields of
 * a batch are named `[index].field`. Every issue is collected (the first 50).
 */
export function parseTelemetry(body: unknown, cfg: TelemetryConfig, now = Date.now()): ParsedTelemetry {
  const batch = Array.isArray(body);
  const items: unknown[] = batch ? (body as unknown[]) : [body];
  if (batch && items.length === 0) return { ok: false, errors: [{ field: 'body', message: 'an empty batch' }] };
  if (items.length > cfg.maxBatch) return { ok: false, errors: [{ field: 'body', message: `${items.length} reports in one batch (at most ${cfg.maxBatch})` }] };
  if (!batch && (body === null || typeof body !== 'object')) return { ok: false, errors: [{ field: 'body', message: 'expected a report object or an array of reports' }] };
  const errors: FieldIssue[] = [];
  const reports: TelemetryReport[] = [];
  const name = (i: number, field: string) => (batch ? `[${i}]${field ? `.${field}` : ''}` : field || 'body');
  for (let i = 0; i < items.length && errors.length < 50; i++) {
    const parsed = telemetryReportSchema.safeParse(items[i]);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) errors.push({ field: name(i, issue.path.join('.')), message: issue.message });
      continue;
    }
    for (const issue of crossCheck(parsed.data, cfg, now)) errors.push({ field: name(i, issue.field), message: issue.message });
    reports.push(parsed.data);
  }
  return errors.length ? { ok: false, errors: errors.slice(0, 50) } : { ok: true, reports };
}
