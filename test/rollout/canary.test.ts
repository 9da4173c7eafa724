/** Canary rollouts: a deterministic per-device split near N %, completion to the whole fleet, rollback of a bad canary. */
import http from 'node:http';
import { canaryBucket } from '../../apps/api/src/rollout/rollout-canary.js';
import { planEtag } from '../../apps/api/src/services/resolve.service.js';
import { json, request, type ApiUnderTest } from '../api/api-test-kit.js';
import { cleanupTestConfig } from '../helpers/env.js';
import { openRegistry, promote, seedVersion, type Registry } from '../registry-lifecycle/lifecycle-kit.js';
import { mintKey, putPolicy, rolloutOf, startRolloutApi, waitForState } from './rollout-kit.js';

interface Resolved {
  status: number;
  etag: string;
  version: number | null;
  cohort: string | null;
}

/** Resolves for many devices over a few keep-alive connections. */
async function resolveMany(api: ApiUnderTest, key: string, model: string, devices: (string | null)[], headers: Record<string, string> = {}): Promise<Resolved[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const out: Resolved[] = new Array(devices.length);
  let next = 0;
  const one = (device: string | null) =>
    new Promise<Resolved>((resolve, reject) => {
      const url = new URL(`/v1/resolve?model=${model}&channel=production&sm=86${device === null ? '' : `&device=${device}`}`, api.baseUrl);
      const req = http.request(url, { agent, headers: { authorization: `Bearer ${key}`, ...headers } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : null;
          resolve({ status: res.statusCode!, etag: String(res.headers.etag), version: body?.version ?? null, cohort: body?.canary?.cohort ?? null });
        });
      });
      req.on('error', reject);
      req.end();
    });
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < devices.length) {
        const i = next++;
        out[i] = await one(devices[i]);
      }
    }),
  );
  agent.destroy();
  return out;
}

async function report(api: ApiUnderTest, key: string, model: string, devices: string[], version: number, p99Ms: number): Promise<void> {
  const end = Date.now();
  for (let i = 0; i < devices.length; i += 500) {
    const batch = devices.slice(i, i + 500).map((deviceId) => ({
      model,
      channel: 'production',
      target: 'sm_86',
      version,
      deviceId,
      window: { start: end - 5000, end },
      requests: 20,
      errors: 0,
      latency: { p50Ms: 2, p99Ms },
    }));
    const res = await request(api, { method: 'POST', url: '/v1/telemetry', payload: batch as unknown as Record<string, unknown>, headers: { authorization: `Bearer ${key}` } });
    expect(res.statusCode).toBe(202);
  }
}

describe('canary rollouts', () => {
  let api: ApiUnderTest;
  let reg: Registry;
  let viewer: string;
  let reporter: string;
  const devices = Array.from({ length: 10_000 }, (_, i) => `gpu-${i.toString(36)}-${(i * 7919) % 10007}`);

  beforeAll(async () => {
    api = await startRolloutApi();
    reg = await openRegistry(api);
    viewer = await mintKey(api, 'viewer');
    reporter = await mintKey(api, 'reporter');
  });
  afterAll(async () => {
    await reg?.close();
    await api?.app.close();
    await cleanupTestConfig();
  });

  it('splits devices deterministically near the canary share, then completes to the whole fleet', async () => {
    const v1 = await seedVersion(reg, 'canary-ok', { sm_86: {} });
    const v2 = await seedVersion(reg, 'canary-ok', { sm_86: {} });
    expect((await promote(api, 'canary-ok', 'production', { version: 1 })).statusCode).toBe(200);
    expect((await putPolicy(api, 'canary-ok', 'production', { watchSeconds: 3, minRequests: 1000, maxP99Regression: 0.2, maxErrorRate: 0.01, canaryPercent: 20 })).statusCode).toBe(200);
    const promoted = await promote(api, 'canary-ok', 'production', { version: 2, canary: {}, reason: 'canary 20 %' });
    expect(promoted.statusCode).toBe(200);
    expect(json(promoted).rollout).toMatchObject({ version: 2, state: 'watching', canaryPercent: 20 });

    const first = await resolveMany(api, viewer, 'canary-ok', devices);
    const inCanary = first.filter((r) => r.version === 2).length;
    expect(first.every((r) => r.status === 200)).toBe(true);
    expect(inCanary / devices.length).toBeGreaterThanOrEqual(0.18);
    expect(inCanary / devices.length).toBeLessThanOrEqual(0.22);
    // The split is the documented hash, and each answer's ETag is the plan it returned.
    first.forEach((r, i) => {
      const canary = canaryBucket(devices[i], 'production', 2) < 2000;
      expect(r.version).toBe(canary ? 2 : 1);
      expect(r.cohort).toBe(canary ? 'canary' : 'stable');
      expect(r.etag).toBe(canary ? planEtag(v2.planSha.sm_86, 2) : planEtag(v1.planSha.sm_86, 1));
    });
    // Stable across polls; a device revalidating its ETag gets a 304.
    const again = await resolveMany(api, viewer, 'canary-ok', devices.slice(0, 500));
    expect(again.map((r) => r.version)).toEqual(first.slice(0, 500).map((r) => r.version));
    const canaryDevice = devices[first.findIndex((r) => r.version === 2)];
    const [revalidated] = await resolveMany(api, viewer, 'canary-ok', [canaryDevice], { 'if-none-match': planEtag(v2.planSha.sm_86, 2) });
    expect(revalidated.status).toBe(304);
    // A device that does not say who it is stays on the stable version.
    const [anonymous] = await resolveMany(api, viewer, 'canary-ok', [null]);
    expect(anonymous.version).toBe(1);

    // Both cohorts report over the same window (the old one first: the new one's figures decide): healthy.
    const canaryIds = devices.filter((_, i) => first[i].version === 2);
    const stableIds = devices.filter((_, i) => first[i].version === 1);
    await report(api, reporter, 'canary-ok', stableIds.slice(0, 400), 1, 7.0);
    await report(api, reporter, 'canary-ok', canaryIds.slice(0, 100), 2, 7.2);

    const done = await waitForState(api, 'canary-ok', 'production', 2, 'complete');
    expect(done).toMatchObject({ canary: { percent: 20 } });
    expect(done.reason).toMatch(/^watch window passed cleanly over 2,000 requests: error rate 0\.0% <= 1\.0% over 2,000 requests; p99 [+-]\d+% /);
    expect(done.evaluation.scopes[0].candidate.requests).toBe(2000);
    expect(done.evaluation.scopes[0].baseline.requests).toBe(8000);
    const after = await resolveMany(api, viewer, 'canary-ok', devices.slice(0, 300));
    expect(after.every((r) => r.version === 2 && r.cohort === null)).toBe(true);
  });

  it('rolls a regressing canary back: every device returns to the old version', async () => {
    await seedVersion(reg, 'canary-bad', { sm_86: {} });
    await seedVersion(reg, 'canary-bad', { sm_86: {} });
    expect((await promote(api, 'canary-bad', 'production', { version: 1 })).statusCode).toBe(200);
    expect((await putPolicy(api, 'canary-bad', 'production', { watchSeconds: 60, minRequests: 500, maxP99Regression: 0.2, maxErrorRate: 0.01 })).statusCode).toBe(200);
    // No default share in the policy: the promotion must name one.
    const missing = await promote(api, 'canary-bad', 'production', { version: 2, canary: {} });
    expect(missing.statusCode).toBe(400);
    expect(json(missing).errors).toEqual([expect.objectContaining({ field: 'canary.percent' })]);
    expect((await promote(api, 'canary-bad', 'production', { version: 2, canary: { percent: 10 } })).statusCode).toBe(200);

    const sample = devices.slice(0, 1000);
    const split = await resolveMany(api, viewer, 'canary-bad', sample);
    const canaryIds = sample.filter((_, i) => split[i].version === 2);
    const stableIds = sample.filter((_, i) => split[i].version === 1);
    expect(canaryIds.length).toBeGreaterThan(60);
    await report(api, reporter, 'canary-bad', stableIds.slice(0, 500), 1, 7.0);
    await report(api, reporter, 'canary-bad', canaryIds.slice(0, 50), 2, 11.0);
    const rolled = await waitForState(api, 'canary-bad', 'production', 2, 'rolled_back');
    expect(rolled.reason).toMatch(/^auto: p99 \+\d+% \(1\d\.\d ms vs [67]\.\d ms over 1,000 requests\)$/);
    const after = await resolveMany(api, viewer, 'canary-bad', canaryIds.slice(0, 50));
    expect(after.every((r) => r.version === 1 && r.cohort === null)).toBe(true);
  });

  it('sends a canary to every device when its version is promoted again without a canary', async () => {
    await seedVersion(reg, 'canary-full', { sm_86: {} });
    await seedVersion(reg, 'canary-full', { sm_86: {} });
    expect((await promote(api, 'canary-full', 'production', { version: 1 })).statusCode).toBe(200);
    expect((await promote(api, 'canary-full', 'production', { version: 2, canary: { percent: 1.5 } })).statusCode).toBe(200);
    const stable = devices.find((d) => canaryBucket(d, 'production', 2) >= 150)!;
    expect((await resolveMany(api, viewer, 'canary-full', [stable]))[0]).toMatchObject({ version: 1, cohort: 'stable' });
    const full = await promote(api, 'canary-full', 'production', { version: 2, reason: 'looks good' });
    expect(json(full).rollout).toMatchObject({ version: 2, state: 'complete', canaryPercent: 1.5 });
    expect((await rolloutOf(api, 'canary-full', 'production')).reason).toBe('canary of 1.5% promoted to every device by admin (ADMIN_API_KEY)');
    expect((await resolveMany(api, viewer, 'canary-full', [stable]))[0]).toMatchObject({ version: 2, cohort: null });
  });

  it('refuses a canary with nothing to keep serving', async () => {
    await seedVersion(reg, 'canary-new', { sm_86: {} });
    const res = await promote(api, 'canary-new', 'production', { version: 1, canary: { percent: 5 } });
    expect(res.statusCode).toBe(409);
    expect(json(res).code).toBe('E_CANARY');
    const bad = await promote(api, 'canary-new', 'production', { version: 1, canary: { percent: 100 } });
    expect(bad.statusCode).toBe(400);
  });
});
