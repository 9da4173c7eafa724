/** POST /v1/telemetry: the reporter role, validation and bounds, aggregated storage (written through and buffered). */
import { Readable } from 'node:stream';
import { roleSatisfies, API_KEY_ROLES } from '../../libs/registry/index.js';
import { bucketIndex, fromDeviceHistogram, fromPercentiles, mergeInto, quantile, toDense, HIST_BUCKETS } from '../../apps/api/src/telemetry/telemetry-histogram.js';
import { canaryBucket } from '../../apps/api/src/rollout/rollout-canary.js';
import { TelemetryService } from '../../apps/api/src/telemetry/telemetry.service.js';
import { json, listen, request, sql, type ApiUnderTest } from '../api/api-test-kit.js';
import { cleanupTestConfig } from '../helpers/env.js';
import { as, openRegistry, type Registry } from '../registry-lifecycle/lifecycle-kit.js';
import { mintKey, modelWithVersions, startRolloutApi, waitFor } from './rollout-kit.js';

function report(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const end = Date.now();
  return {
    model: 'intake',
    channel: 'production',
    target: 'sm_86',
    version: 1,
    deviceId: 'jetson-0001',
    window: { start: new Date(end - 10_000).toISOString(), end },
    requests: 100,
    errors: 1,
    latency: { p50Ms: 3.2, p99Ms: 7.5 },
    ...overrides,
  };
}

describe('role lattice, histogram and canary hash', () => {
  it('reporter sits beside the viewer ⊂ submitter ⊂ admin chain, below admin only', () => {
    const expected: Record<string, string[]> = {
      viewer: ['viewer'],
      submitter: ['viewer', 'submitter'],
      admin: ['viewer', 'submitter', 'admin', 'reporter'],
      reporter: ['reporter'],
    };
    for (const have of API_KEY_ROLES) {
      expect(API_KEY_ROLES.filter((need) => roleSatisfies(have, need))).toEqual(API_KEY_ROLES.filter((r) => expected[have].includes(r)));
    }
  });

  it('keeps percentiles within half a bucket when merging reports', () => {
    for (const v of [0.05, 0.9, 8.8, 12.1, 250, 40_000]) {
      const q = quantile(toDense(fromPercentiles(1000, v / 2, v)), 0.99)!;
      expect(Math.abs(q / v - 1)).toBeLessThan(0.05);
    }
    const merged = fromPercentiles(500, 4, 8.8);
    mergeInto(merged, fromPercentiles(1500, 4.2, 9.1));
    const dense = toDense(merged);
    expect(dense.reduce((a, b) => a + b, 0)).toBe(2000);
    expect(quantile(dense, 0.99)!).toBeGreaterThan(8.3);
    expect(quantile(dense, 0.99)!).toBeLessThan(9.6);
    expect(quantile(dense, 0.5)!).toBeGreaterThan(3.8);
    expect(quantile(dense, 0.5)!).toBeLessThan(4.5);
    expect(bucketIndex(0)).toBe(0);
    expect(bucketIndex(1e12)).toBe(HIST_BUCKETS - 1);
    // A device histogram: 90 requests ≤ 5 ms, 9 ≤ 10 ms, 1 above 20 ms.
    const device = toDense(fromDeviceHistogram([5, 10, 20], [90, 9, 0, 1]));
    expect(device.reduce((a, b) => a + b, 0)).toBe(100);
    expect(quantile(device, 0.9)!).toBeLessThan(5);
    expect(quantile(device, 0.99)!).toBeGreaterThan(5);
  });

  it('hashes devices uniformly into 10,000 canary buckets', () => {
    let below = 0;
    for (let i = 0; i < 10_000; i++) if (canaryBucket(`device-${i}`, 'production', 7) < 500) below++;
    expect(below).toBeGreaterThan(400);
    expect(below).toBeLessThan(600);
    expect(canaryBucket('device-1', 'production', 7)).toBe(canaryBucket('device-1', 'production', 7));
  });
});

describe('POST /v1/telemetry', () => {
  let api: ApiUnderTest;
  let reg: Registry;
  const keys: Record<string, string> = {};

  beforeAll(async () => {
    api = await startRolloutApi({ TELEMETRY_MAX_BATCH: '50', TELEMETRY_MAX_BODY_BYTES: '64KiB', TELEMETRY_MAX_CLOCK_SKEW_SECONDS: '30', TELEMETRY_MAX_AGE_SECONDS: '86400' });
    reg = await openRegistry(api);
    for (const role of ['viewer', 'submitter', 'reporter']) keys[role] = await mintKey(api, role);
    keys.admin = api.apiKey!;
    await modelWithVersions(api, reg, 'intake', 'production', 2);
  });
  afterAll(async () => {
    await reg?.close();
    await api?.app.close();
    await cleanupTestConfig();
  });

  const post = (key: string | null, payload: unknown, headers: Record<string, string> = {}) =>
    as(api, key, { method: 'POST', url: '/v1/telemetry', payload: payload as Record<string, unknown>, headers });

  it('needs a reporter (or admin) key; a reporter can do nothing else', async () => {
    expect((await post(null, report())).statusCode).toBe(401);
    const viewer = await post(keys.viewer, report());
    expect(viewer.statusCode).toBe(403);
    expect(json(viewer)).toMatchObject({ code: 'E_FORBIDDEN', message: expect.stringContaining('reporter role') });
    expect((await post(keys.submitter, report())).statusCode).toBe(403);
    const ok = await post(keys.reporter, report());
    expect(ok.statusCode).toBe(202);
    expect(json(ok)).toEqual({ accepted: 1, series: 1, buffered: false });
    expect((await post(keys.admin, report())).statusCode).toBe(202);
    for (const url of ['/v1/models', '/v1/models/intake/channels/production', '/v1/resolve?model=intake&channel=production&sm=86', '/v1/admin/keys']) {
      expect((await as(api, keys.reporter, { url })).statusCode).toBe(403);
    }
  });

  it('answers 400 naming the field for bad, future-dated, too old, negative or inconsistent reports', async () => {
    const now = Date.now();
    const cases: [Record<string, unknown>, string][] = [
      [report({ window: { start: now - 1000, end: now + 10 * 60_000 } }), 'window.end'],
      [report({ window: { start: now - 3 * 86_400_000, end: now - 3 * 86_400_000 + 1000 } }), 'window.start'],
      [report({ window: { start: now - 2 * 3_600_000, end: now } }), 'window'],
      [report({ window: { start: now, end: now - 1000 } }), 'window.end'],
      [report({ window: { start: 'yesterday', end: now } }), 'window.start'],
      [report({ requests: -5 }), 'requests'],
      [report({ errors: -1 }), 'errors'],
      [report({ requests: 10, errors: 11 }), 'errors'],
      [report({ latency: { p50Ms: 9, p99Ms: 3 } }), 'latency.p99Ms'],
      [report({ latency: { p50Ms: -1, p99Ms: 3 } }), 'latency.p50Ms'],
      [report({ latency: undefined, histogram: { bucketsMs: [1, 2], counts: [1, 2, 3, 4] } }), 'histogram.counts'],
      [report({ latency: undefined, histogram: { bucketsMs: [2, 1], counts: [1, 2] } }), 'histogram.bucketsMs'],
      [report({ latency: undefined, histogram: { bucketsMs: [1, 2], counts: [100, 100] } }), 'histogram.counts'],
      [report({ target: 'sm_75' }), 'target'],
      [report({ deviceId: 'bad id with spaces' }), 'deviceId'],
      [report({ surprise: true }), 'body'],
      [report({ version: 99 }), 'version'],
    ];
    for (const [body, field] of cases) {
      const res = await post(keys.reporter, body);
      expect({ field, status: res.statusCode }).toEqual({ field, status: 400 });
      expect(json(res).errors.map((e: any) => e.field)).toContain(field);
    }
    // Batches name the report: [index].field; nothing of a refused batch is stored.
    const before = await sql<{ n: string }>(api.config, `SELECT coalesce(sum(reports), 0) AS n FROM telemetry_buckets`);
    const batch = [report(), report(), report({ requests: -1 })];
    const res = await post(keys.reporter, batch);
    expect(res.statusCode).toBe(400);
    expect(json(res).errors).toEqual([expect.objectContaining({ field: '[2].requests' })]);
    const after = await sql<{ n: string }>(api.config, `SELECT coalesce(sum(reports), 0) AS n FROM telemetry_buckets`);
    expect(after[0].n).toBe(before[0].n);
    const tooMany = await post(keys.reporter, Array.from({ length: 51 }, () => report()));
    expect(tooMany.statusCode).toBe(400);
    expect(json(tooMany).errors[0]).toMatchObject({ field: 'body', message: expect.stringContaining('at most 50') });
    expect((await post(keys.reporter, [])).statusCode).toBe(400);
    const unknown = await post(keys.reporter, report({ channel: 'nightly' }));
    expect(unknown.statusCode).toBe(404);
    expect(json(unknown)).toMatchObject({ code: 'E_UNKNOWN_CHANNEL', errors: [{ field: 'channel', message: expect.any(String) }] });
  });

  it('refuses oversized bodies with 413, declared or chunked', async () => {
    const big = JSON.stringify(Array.from({ length: 40 }, () => report({ deviceId: 'x'.repeat(120), pad: undefined })).concat([{ pad: 'y'.repeat(70_000) } as any]));
    const declared = await post(keys.reporter, big, { 'content-type': 'application/json' });
    expect(declared.statusCode).toBe(413);
    const chunked = await post(keys.reporter, Readable.from([Buffer.from(big.slice(0, 40_000)), Buffer.from(big.slice(40_000))]), { 'content-type': 'application/json' });
    expect(chunked.statusCode).toBe(413);
  });

  it('stores a fleet aggregated: one row per channel, target, version and bucket', async () => {
    await sql(api.config, `DELETE FROM telemetry_buckets`);
    const end = Date.now();
    // 40 devices, one window each, same bucket; a second target; a device histogram.
    const fleet = Array.from({ length: 40 }, (_, i) => report({ deviceId: `orin-${i}`, window: { start: end - 5000, end }, requests: 250, errors: i % 2, latency: { p50Ms: 4, p99Ms: 8.8 } }));
    fleet.push(report({ target: '80', deviceId: 'a100-1', window: { start: end - 5000, end }, requests: 100, errors: 0, latency: undefined, histogram: { bucketsMs: [5, 10, 20], counts: [90, 9, 1] } }));
    const res = await post(keys.reporter, fleet);
    expect(res.statusCode).toBe(202);
    expect(json(res)).toEqual({ accepted: 41, series: 2, buffered: false });
    const rows = await sql<{ target: string; reports: string; requests: string; errors: string; window_ms: string; latency_count: string; latency_hist: string[] }>(
      api.config,
      `SELECT target, reports, requests, errors, window_ms, latency_count, latency_hist FROM telemetry_buckets ORDER BY target`,
    );
    expect(rows.map((r) => [r.target, Number(r.reports), Number(r.requests), Number(r.errors), Number(r.window_ms), Number(r.latency_count)])).toEqual([
      ['sm_80', 1, 100, 0, 5000, 100],
      ['sm_86', 40, 10_000, 20, 200_000, 10_000],
    ]);
    const p99 = quantile(rows[1].latency_hist.map(Number), 0.99)!;
    expect(Math.abs(p99 / 8.8 - 1)).toBeLessThan(0.05);
    // The same reports again add to the same rows.
    expect((await post(keys.reporter, fleet)).statusCode).toBe(202);
    const [again] = await sql<{ n: string; requests: string }>(api.config, `SELECT count(*) AS n, sum(requests) AS requests FROM telemetry_buckets`);
    expect([Number(again.n), Number(again.requests)]).toEqual([2, 20_200]);
  });

  it('writes reports sent with an Idempotency-Key exactly once, even when retried concurrently', async () => {
    await sql(api.config, `DELETE FROM telemetry_buckets`);
    const end = Date.now();
    const batch = Array.from({ length: 5 }, (_, i) => report({ deviceId: `retry-${i}`, window: { start: end - 5000, end }, requests: 100, errors: 1 }));
    const key = { 'idempotency-key': 'gateway-7-batch-0042' };
    // A gateway that lost the answer retries at once, several times, some in parallel.
    const answers = await Promise.all([post(keys.reporter, batch, key), post(keys.reporter, batch, key), post(keys.reporter, batch, key)]);
    expect(answers.map((a) => a.statusCode).sort()).toEqual([200, 200, 202]);
    for (const a of answers) expect(json(a)).toEqual({ accepted: 5, series: 1, buffered: false });
    expect(answers.filter((a) => a.headers['idempotent-replayed'] === 'true')).toHaveLength(2);
    const [row] = await sql<{ reports: string; requests: string }>(api.config, `SELECT sum(reports) AS reports, sum(requests) AS requests FROM telemetry_buckets`);
    expect([Number(row.reports), Number(row.requests)]).toEqual([5, 500]);

    // The same key with other reports is refused; another reporter's key of the same name is its own.
    const other = await post(keys.reporter, [report({ deviceId: 'someone-else' })], key);
    expect(other.statusCode).toBe(409);
    expect(json(other)).toMatchObject({ code: 'E_IDEMPOTENCY_CONFLICT' });
    expect((await post(keys.admin, batch, key)).statusCode).toBe(202);
    expect((await post(keys.reporter, batch, { 'idempotency-key': 'bad key' })).statusCode).toBe(400);
    // A batch refused for its content claims no key: fixed and sent again under the same key, it counts.
    const bad = await post(keys.reporter, [report({ requests: -1 })], { 'idempotency-key': 'fixed-later' });
    expect(bad.statusCode).toBe(400);
    expect((await post(keys.reporter, [report({ deviceId: 'fixed' })], { 'idempotency-key': 'fixed-later' })).statusCode).toBe(202);
  });

  it('prunes buckets older than the retention', async () => {
    await sql(api.config, `DELETE FROM telemetry_buckets`);
    expect((await post(keys.reporter, report())).statusCode).toBe(202);
    await sql(api.config, `UPDATE telemetry_buckets SET bucket_start = now() - interval '8 days'`);
    expect((await post(keys.reporter, report())).statusCode).toBe(202);
    expect(await api.app.get(TelemetryService).prune()).toBe(1);
    const [left] = await sql<{ n: string }>(api.config, `SELECT count(*) AS n FROM telemetry_buckets`);
    expect(Number(left.n)).toBe(1);
  });

  it('buffers reports in memory when TELEMETRY_FLUSH_MS is set, and flushes what is pending on close', async () => {
    await sql(api.config, `DELETE FROM telemetry_buckets`);
    const buffered = await listen({ ...api.config, telemetry: { ...api.config.telemetry!, flushMs: 300 } });
    try {
      const res = await as(buffered, keys.reporter, { method: 'POST', url: '/v1/telemetry', payload: [report(), report({ deviceId: 'other' })] as unknown as Record<string, unknown> });
      expect(res.statusCode).toBe(202);
      expect(json(res)).toMatchObject({ accepted: 2, buffered: true });
      await waitFor('the flush', async () => Number((await sql<{ n: string }>(api.config, `SELECT coalesce(sum(requests), 0) AS n FROM telemetry_buckets`))[0].n) === 200, 5000);
      await as(buffered, keys.reporter, { method: 'POST', url: '/v1/telemetry', payload: report() });
    } finally {
      await buffered.app.close();
    }
    const [total] = await sql<{ n: string }>(api.config, `SELECT sum(requests) AS n FROM telemetry_buckets`);
    expect(Number(total.n)).toBe(300);
  });
});
