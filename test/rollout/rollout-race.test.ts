/** Several API instances on one database, all watching: a regression is rolled back exactly once. */
import { RolloutWatcherService, type WatchOutcome } from '../../apps/api/src/rollout/rollout-watcher.service.js';
import { json, listen, request, type ApiUnderTest } from '../api/api-test-kit.js';
import { cleanupTestConfig } from '../helpers/env.js';
import { openRegistry, promote, type Registry } from '../registry-lifecycle/lifecycle-kit.js';
import { mintKey, modelWithVersions, putPolicy, reportFleet, startRolloutApi, waitForState, webhookReceiver } from './rollout-kit.js';

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
  });
});
