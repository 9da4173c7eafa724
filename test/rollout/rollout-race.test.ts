/** Several API instances on one database, all watching: a regression is rolled back exactly once. */
import { RolloutWatcherService, type WatchOutcome } from '../../apps/api/src/rollout/rollout-watcher.service.js';
import { verifyGenericSignature } from '../../apps/api/src/services/webhook-signatures.js';
import { json, listen, request, sql, type ApiUnderTest } from '../api/api-test-kit.js';
import { cleanupTestConfig } from '../helpers/env.js';
import { openRegistry, promote, type Registry } from '../registry-lifecycle/lifecycle-kit.js';
import { mintKey, modelWithVersions, putPolicy, reportFleet, startRolloutApi, waitFor, waitForState, webhookReceiver } from './rollout-kit.js';

const SECRET = 'race-hook-secret-0123456789';

describe('rollout watch across instances', () => {
  const apis: ApiUnderTest[] = [];
  let reg: Registry;
  let reporter: string;
  let hook: Awaited<ReturnType<typeof webhookReceiver>>;

  async function regressingRollout(api: ApiUnderTest, model: string): Promise<void> {
    await modelWithVersions(api, reg, model, 'production', 2);
    const policy = { watchSeconds: 30, minRequests: 1000, maxP99Regression: 0.2, maxErrorRate: 0.01, webhook: { url: hook.url, secret: SECRET } };
    expect((await putPolicy(api, model, 'production', policy)).statusCode).toBe(200);
    await reportFleet(api, reporter, { model, channel: 'production', version: 1, devices: 40, requestsPerDevice: 50, p50Ms: 3, p99Ms: 6 });
    expect((await promote(api, model, 'production', { version: 2 })).statusCode).toBe(200);
    // Half the fleet reports to one instance, half to the other.
    await reportFleet(apis[0], reporter, { model, channel: 'production', version: 2, devices: 20, requestsPerDevice: 50, p50Ms: 3, p99Ms: 9, devicePrefix: 'a' });
    await reportFleet(apis[1], reporter, { model, channel: 'production', version: 2, devices: 20, requestsPerDevice: 50, p50Ms: 3, p99Ms: 9, devicePrefix: 'b' });
  }

  async function rollbacksOf(api: ApiUnderTest, model: string): Promise<{ history: any[]; audit: any[]; hooks: number }> {
    const channel = json(await request(api, { url: `/v1/models/${model}/channels/production` }));
    const audit = json(await request(api, { url: '/v1/admin/audit?action=channel.rollback&limit=1000' })).entries.filter((e: any) => e.subject === `model ${model} channel production`);
    const hooks = hook.received.filter((w) => JSON.parse(w.body).model === model && w.headers['x-planforge-event'] === 'rollout.rolled_back').length;
    return { history: channel.history.filter((e: any) => e.action === 'rollback'), audit, hooks };
  }

  beforeAll(async () => {
    hook = await webhookReceiver();
    // Two instances with their watcher loop off: their ticks are driven by the test.
    apis.push(await startRolloutApi({ ROLLOUT_WATCHER_ENABLED: 'false' }));
    apis.push(await listen(apis[0].config));
    reg = await openRegistry(apis[0]);
    reporter = await mintKey(apis[0], 'reporter');
  });
  afterAll(async () => {
    await reg?.close();
    for (const api of apis) await api.app.close();
    await hook?.close();
    await cleanupTestConfig();
  });

  it('two instances judging the same rollout at the same moment: one rolls back, the other finds nothing to do', async () => {
    await regressingRollout(apis[0], 'race-direct');
    const watchers = apis.map((a) => a.app.get(RolloutWatcherService));
    const outcomes: WatchOutcome[] = [];
    for (let round = 0; round < 3; round++) {
      const results = await Promise.all(watchers.map((w) => w.tick()));
      for (const r of results) outcomes.push(...Object.values(r));
    }
    expect(outcomes.filter((o) => o === 'rolled_back')).toHaveLength(1);
    await waitForState(apis[1], 'race-direct', 'production', 2, 'rolled_back');
    await new Promise((r) => setTimeout(r, 300));
    const seen = await rollbacksOf(apis[1], 'race-direct');
    expect(seen.history).toHaveLength(1);
    expect(seen.audit).toHaveLength(1);
    expect(seen.hooks).toBe(1);
  });

  it('two instances with their watcher loops running: exactly one rollback', async () => {
    // Two more instances on the same database, watching every 100 ms.
    for (let i = 0; i < 2; i++) {
      const config = { ...apis[0].config, rollout: { ...apis[0].config.rollout!, watcherEnabled: true, watchIntervalMs: 100 } };
      apis.push(await listen(config));
    }
    await regressingRollout(apis[2], 'race-loops');
    const rolled = await waitForState(apis[3], 'race-loops', 'production', 2, 'rolled_back');
    expect(rolled.reason).toMatch(/^auto: p99 \+\d+% /);
    // Let both loops tick several more times.
    await new Promise((r) => setTimeout(r, 800));
    const seen = await rollbacksOf(apis[2], 'race-loops');
    expect(seen.history).toHaveLength(1);
    expect(seen.audit).toHaveLength(1);
    expect(seen.hooks).toBe(1);
    let counted = 0;
    for (const api of apis.slice(2)) {
      const m = /planforge_auto_rollbacks_total\{model="race-loops",channel="production",reason="p99_regression"\} (\d+)/.exec((await request(api, { url: '/metrics', anonymous: true })).body);
      counted += m ? Number(m[1]) : 0;
    }
    expect(counted).toBe(1);
    // Stop the two loops: they would race the next test's instance for its rollback ('lost_race').
    for (const api of apis.splice(2)) await api.app.close();
  });

  it('a rollback notice outlives the instance that wrote it: another instance delivers it, once, with one delivery id', async () => {
    // This receiver refuses the first two attempts.
    const flaky = await webhookReceiver(2);
    const extra = await listen(apis[0].config);
    try {
      const model = 'race-outbox';
      await modelWithVersions(apis[0], reg, model, 'production', 2);
      const policy = { watchSeconds: 30, minRequests: 1000, maxP99Regression: 0.2, maxErrorRate: 0.01, webhook: { url: flaky.url, secret: SECRET } };
      expect((await putPolicy(apis[0], model, 'production', policy)).statusCode).toBe(200);
      await reportFleet(apis[0], reporter, { model, channel: 'production', version: 1, devices: 40, requestsPerDevice: 50, p50Ms: 3, p99Ms: 6 });
      expect((await promote(apis[0], model, 'production', { version: 2 })).statusCode).toBe(200);
      await reportFleet(apis[0], reporter, { model, channel: 'production', version: 2, devices: 40, requestsPerDevice: 50, p50Ms: 3, p99Ms: 9 });
      // The extra instance rolls back (the notice is written in that transaction) and makes the first attempt...
      const outcome = await extra.app.get(RolloutWatcherService).tick();
      expect(Object.values(outcome)).toContain('rolled_back');
      await waitFor('the first attempt', async () => flaky.attempts() >= 1);
      // ...and stops. The notice is in Postgres, not in its memory.
      await extra.app.close();
      const [row] = await sql<{ id: string; status: string }>(apis[0].config, `SELECT o.id, o.status FROM notification_outbox o JOIN channels c ON c.id = o.channel_id JOIN models m ON m.id = c.model_id WHERE m.name = $1`, [model]);
      expect(row.status).toBe('pending');
      const delivered = await waitFor('delivery by another instance', async () => {
        const [r] = await sql<{ status: string; attempts: number }>(apis[0].config, `SELECT status, attempts FROM notification_outbox WHERE id = $1`, [row.id]);
        return r.status === 'delivered' ? r : null;
      }, 30_000);
      expect(delivered.attempts).toBe(3);
      expect(flaky.received).toHaveLength(1);
      expect(flaky.received[0].headers['x-planforge-delivery']).toBe(row.id);
      expect(JSON.parse(flaky.received[0].body)).toMatchObject({ event: 'rollout.rolled_back', model, deliveryId: row.id, version: 2 });
      expect(verifyGenericSignature(SECRET, Buffer.from(flaky.received[0].body), String(flaky.received[0].headers['x-planforge-signature'])).ok).toBe(true);
    } finally {
      await flaky.close();
    }
  });
});
