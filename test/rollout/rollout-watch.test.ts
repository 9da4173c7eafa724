/** Automatic rollback: a healthy rollout completes, a p99 regression and an error spike roll back once, too few requests decide nothing. */
import { verifyGenericSignature } from '../../apps/api/src/services/webhook-signatures.js';
import { json, request, type ApiUnderTest } from '../api/api-test-kit.js';
import { cleanupTestConfig } from '../helpers/env.js';
import { openRegistry, promote, rollback, seedVersion, type Registry } from '../registry-lifecycle/lifecycle-kit.js';
import { mintKey, modelWithVersions, putPolicy, reportFleet, rolloutOf, startRolloutApi, waitFor, waitForState, webhookReceiver } from './rollout-kit.js';

const SECRET = 'rollout-hook-secret-0123456789';

describe('rollout watch', () => {
  let api: ApiUnderTest;
  let reg: Registry;
  let reporter: string;
  let hook: Awaited<ReturnType<typeof webhookReceiver>>;

  const policy = () => ({
    watchSeconds: 2,
    minRequests: 2000,
    baselineSeconds: 3600,
    maxP99Regression: 0.2,
    maxErrorRate: 0.01,
    webhook: { url: hook.url, secret: SECRET },
  });

  /** v1 live with a healthy baseline (50 devices × 100 requests, p99 8.8 ms), then v2 promoted under the policy. */
  async function promotedUnderWatch(model: string): Promise<void> {
    await modelWithVersions(api, reg, model, 'production', 2);
    expect((await putPolicy(api, model, 'production', policy())).statusCode).toBe(200);
    await reportFleet(api, reporter, { model, channel: 'production', version: 1, devices: 50, requestsPerDevice: 100, p50Ms: 4, p99Ms: 8.8 });
    const res = await promote(api, model, 'production', { version: 2, reason: 'ship v2' });
    expect(res.statusCode).toBe(200);
    expect(json(res).rollout).toMatchObject({ version: 2, state: 'watching', targets: ['sm_86'], canaryPercent: null });
  }

  function webhooksFor(model: string, event: string) {
    return hook.received.filter((w) => w.headers['x-planforge-event'] === event && JSON.parse(w.body).model === model);
  }

  beforeAll(async () => {
    hook = await webhookReceiver(1);
    api = await startRolloutApi();
    reg = await openRegistry(api);
    reporter = await mintKey(api, 'reporter');
  });
  afterAll(async () => {
    await reg?.close();
    await api?.app.close();
    await hook?.close();
    await cleanupTestConfig();
  });

  it('completes a healthy rollout when the window passes with enough requests', async () => {
    await promotedUnderWatch('healthy');
    await reportFleet(api, reporter, { model: 'healthy', channel: 'production', version: 2, devices: 50, requestsPerDevice: 100, p50Ms: 4.1, p99Ms: 9.0 });
    const done = await waitForState(api, 'healthy', 'production', 2, 'complete');
    expect(done.reason).toMatch(/^watch window passed cleanly over 5,000 requests/);
    expect(done.evaluation).toMatchObject({ action: 'complete', scopes: [expect.objectContaining({ scope: 'all', judged: true })] });
    const channel = json(await request(api, { url: '/v1/models/healthy/channels/production' }));
    expect(channel.pointers.map((p: any) => p.version)).toEqual([2]);
    expect(channel.history.filter((e: any) => e.action === 'rollback')).toEqual([]);
    // The first delivery got a 503: the notifier retried, and the signature holds.
    const [completed] = await waitFor('the completion webhook', async () => (webhooksFor('healthy', 'rollout.completed').length ? webhooksFor('healthy', 'rollout.completed') : undefined));
    expect(verifyGenericSignature(SECRET, Buffer.from(completed.body), String(completed.headers['x-planforge-signature'])).ok).toBe(true);
    expect(hook.attempts()).toBeGreaterThanOrEqual(2);
  });

  it('rolls a p99 regression back exactly once, with the figures in the reason, history, audit, webhook and metric', async () => {
    await promotedUnderWatch('slow');
    await reportFleet(api, reporter, { model: 'slow', channel: 'production', version: 2, devices: 50, requestsPerDevice: 100, p50Ms: 5, p99Ms: 12.1 });
    const rolled = await waitForState(api, 'slow', 'production', 2, 'rolled_back');
    expect(rolled.reason).toMatch(/^auto: p99 \+\d+% \(1[12]\.\d ms vs [89]\.\d ms over 5,000 requests\)$/);
    const regression = Number(/\+(\d+)%/.exec(rolled.reason)![1]);
    expect(regression).toBeGreaterThanOrEqual(30);
    expect(regression).toBeLessThanOrEqual(45);
    expect(rolled.evaluation).toMatchObject({ action: 'rollback', check: 'p99_regression', scope: 'all' });

    const channel = json(await request(api, { url: '/v1/models/slow/channels/production' }));
    expect(channel.pointers.map((p: any) => p.version)).toEqual([1]);
    const rollbacks = channel.history.filter((e: any) => e.action === 'rollback');
    expect(rollbacks).toEqual([expect.objectContaining({ from: 2, to: 1, actor: 'rollout-watch', reason: rolled.reason })]);

    const audit = json(await request(api, { url: '/v1/admin/audit?action=channel.rollback' })).entries.filter((e: any) => e.subject === 'model slow channel production');
    expect(audit).toEqual([expect.objectContaining({ actor: 'rollout-watch', details: expect.objectContaining({ reason: rolled.reason, automatic: true }) })]);
    const auditRollout = json(await request(api, { url: '/v1/admin/audit?action=rollout.rollback' })).entries.filter((e: any) => e.subject === 'model slow channel production');
    expect(auditRollout).toHaveLength(1);

    const [notice] = await waitFor('the rollback webhook', async () => (webhooksFor('slow', 'rollout.rolled_back').length ? webhooksFor('slow', 'rollout.rolled_back') : undefined));
    expect(verifyGenericSignature(SECRET, Buffer.from(notice.body), String(notice.headers['x-planforge-signature'])).ok).toBe(true);
    expect(verifyGenericSignature('another-secret-0123456789', Buffer.from(notice.body), String(notice.headers['x-planforge-signature'])).ok).toBe(false);
    expect(JSON.parse(notice.body)).toMatchObject({ event: 'rollout.rolled_back', model: 'slow', channel: 'production', version: 2, reason: rolled.reason, check: 'p99_regression' });

    const metrics = (await request(api, { url: '/metrics', anonymous: true })).body;
    expect(metrics).toMatch(/planforge_auto_rollbacks_total\{model="slow",channel="production",reason="p99_regression"\} 1/);

    // No flapping: the bad version is not re-promoted without force.
    const again = await promote(api, 'slow', 'production', { version: 2 });
    expect(again.statusCode).toBe(409);
    expect(json(again).code).toBe('E_ROLLED_BACK');
    // More ticks change nothing.
    await new Promise((r) => setTimeout(r, 600));
    const after = json(await request(api, { url: '/v1/models/slow/channels/production' }));
    expect(after.history.filter((e: any) => e.action === 'rollback')).toHaveLength(1);
    const forced = await promote(api, 'slow', 'production', { version: 2, force: true, reason: 'fixed the host, ship it again' });
    expect(forced.statusCode).toBe(200);
  });

  it('rolls an error-rate spike back', async () => {
    await promotedUnderWatch('flaky');
    await reportFleet(api, reporter, { model: 'flaky', channel: 'production', version: 2, devices: 31, requestsPerDevice: 100, errorsPerDevice: 4, p50Ms: 4, p99Ms: 8.8 });
    const rolled = await waitForState(api, 'flaky', 'production', 2, 'rolled_back');
    expect(rolled.reason).toBe('auto: error rate 4.0% > 1.0% over 3,100 requests');
    const channel = json(await request(api, { url: '/v1/models/flaky/channels/production' }));
    expect(channel.history.filter((e: any) => e.action === 'rollback').map((e: any) => e.reason)).toEqual([rolled.reason]);
    const metrics = (await request(api, { url: '/metrics', anonymous: true })).body;
    expect(metrics).toMatch(/planforge_auto_rollbacks_total\{model="flaky",channel="production",reason="error_rate"\} 1/);
  });

  it('decides nothing on too few requests, even after the window; a manual rollback ends the rollout', async () => {
    await promotedUnderWatch('quiet');
    await reportFleet(api, reporter, { model: 'quiet', channel: 'production', version: 2, devices: 10, requestsPerDevice: 50, errorsPerDevice: 25, p50Ms: 40, p99Ms: 90 });
    await new Promise((r) => setTimeout(r, 2600));
    const r = await rolloutOf(api, 'quiet', 'production');
    expect(r).toMatchObject({ version: 2, state: 'watching', windowRemainingSeconds: 0 });
    expect(r.evaluation.decision).toEqual({ action: 'wait', reason: 'waiting for requests: 500 of 2,000' });
    const check = r.evaluation.scopes[0].checks.find((c: any) => c.name === 'error_rate');
    expect(check).toMatchObject({ status: 'waiting', value: 0.5 });
    const channel = json(await request(api, { url: '/v1/models/quiet/channels/production' }));
    expect(channel.pointers.map((p: any) => p.version)).toEqual([2]);

    const back = await rollback(api, 'quiet', 'production', { reason: 'not enough traffic to trust it' });
    expect(back.statusCode).toBe(200);
    expect(json(back).rollout).toMatchObject({ version: 2, state: 'rolled_back' });
    const ended = await rolloutOf(api, 'quiet', 'production');
    expect(ended).toMatchObject({ state: 'rolled_back', reason: 'not enough traffic to trust it', evaluation: { by: 'manual' } });
    // A manual rollback does not block the version.
    expect((await promote(api, 'quiet', 'production', { version: 2 })).statusCode).toBe(200);
  });

  it('judges each target too: a regression on one target rolls the whole promotion back, naming it', async () => {
    for (let i = 0; i < 2; i++) await seedVersion(reg, 'multi', { sm_86: {}, sm_90: {} });
    expect((await promote(api, 'multi', 'production', { version: 1 })).statusCode).toBe(200);
    expect((await putPolicy(api, 'multi', 'production', { ...policy(), minRequests: 1000, webhook: null })).statusCode).toBe(200);
    for (const target of ['sm_86', 'sm_90']) {
      await reportFleet(api, reporter, { model: 'multi', channel: 'production', target, version: 1, devices: 30, requestsPerDevice: 100, p50Ms: 3, p99Ms: 6 });
    }
    const res = await promote(api, 'multi', 'production', { version: 2 });
    expect(json(res).rollout.targets).toEqual(['sm_86', 'sm_90']);
    // sm_86 much busier and healthy, sm_90 slower: the sum alone would hide it.
    await reportFleet(api, reporter, { model: 'multi', channel: 'production', target: 'sm_86', version: 2, devices: 90, requestsPerDevice: 100, p50Ms: 3, p99Ms: 6 });
    await reportFleet(api, reporter, { model: 'multi', channel: 'production', target: 'sm_90', version: 2, devices: 12, requestsPerDevice: 100, p50Ms: 3, p99Ms: 9 });
    const rolled = await waitForState(api, 'multi', 'production', 2, 'rolled_back');
    expect(rolled.reason).toMatch(/^auto: p99 \+\d+% \([89]\.\d ms vs [56]\.\d ms over 1,200 requests\) on sm_90$/);
    const channel = json(await request(api, { url: '/v1/models/multi/channels/production' }));
    expect(channel.pointers.map((p: any) => [p.target, p.version])).toEqual([
      ['sm_86', 1],
      ['sm_90', 1],
    ]);
  });

  it('rolls a throughput drop back when the policy watches throughput', async () => {
    await modelWithVersions(api, reg, 'sluggish', 'production', 2);
    expect((await putPolicy(api, 'sluggish', 'production', { ...policy(), maxThroughputDrop: 0.3, webhook: null })).statusCode).toBe(200);
    await reportFleet(api, reporter, { model: 'sluggish', channel: 'production', version: 1, devices: 50, requestsPerDevice: 100, p50Ms: 4, p99Ms: 8.8, windowMs: 5000 });
    expect((await promote(api, 'sluggish', 'production', { version: 2 })).statusCode).toBe(200);
    // Same requests per report, but each device needed twice the time to serve them.
    await reportFleet(api, reporter, { model: 'sluggish', channel: 'production', version: 2, devices: 50, requestsPerDevice: 100, p50Ms: 4, p99Ms: 8.8, windowMs: 10_000 });
    const rolled = await waitForState(api, 'sluggish', 'production', 2, 'rolled_back');
    expect(rolled.reason).toBe('auto: throughput -50% (10.0 vs 20.0 requests/device-s over 5,000 requests)');
  });

  it('validates policies and keeps the webhook secret to itself', async () => {
    await modelWithVersions(api, reg, 'policy-model', 'beta', 1);
    const bad = await putPolicy(api, 'policy-model', 'beta', { watchSeconds: 0, maxErrorRate: 2, webhook: { url: 'ftp://x', secret: 'short' } });
    expect(bad.statusCode).toBe(400);
    expect(json(bad).errors.map((e: any) => e.field).sort()).toEqual(['maxErrorRate', 'watchSeconds', 'webhook.secret', 'webhook.url']);
    expect((await putPolicy(api, 'policy-model', 'beta', { minRequests: 10, webhook: { url: hook.url, secret: SECRET } })).statusCode).toBe(200);
    const got = json(await request(api, { url: '/v1/models/policy-model/channels/beta/policy' }));
    expect(got.policy).toMatchObject({ minRequests: 10, watchSeconds: 600, maxP99Regression: 0.2, webhook: { url: hook.url, secretSet: true } });
    expect(JSON.stringify(got)).not.toContain(SECRET);
    const viewer = await mintKey(api, 'viewer', 'policy-viewer');
    const asViewer = await request(api, { url: '/v1/models/policy-model/channels/beta/policy', headers: { authorization: `Bearer ${viewer}` } });
    expect(asViewer.statusCode).toBe(403);
  });
});
