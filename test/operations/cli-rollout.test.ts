/**
 * `planforge rollout status` and `promote --canary` run as a child process
 * against a real API: a canary rollout under watch, with fleet telemetry for
 * both cohorts, read back as text (state, canary %, window, checks vs limits,
 * decision) and as --json.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ApiUnderTest } from '../api/api-test-kit.js';
import { runCli, type CliResult } from '../helpers/cli-runner.js';
import { cleanupTestConfig } from '../helpers/env.js';
import { openRegistry, type Registry } from '../registry-lifecycle/lifecycle-kit.js';
import { mintKey, modelWithVersions, putPolicy, reportFleet, startRolloutApi } from '../rollout/rollout-kit.js';

function cli(args: string[], env: Record<string, string>, home: string): Promise<CliResult> {
  return runCli(args, env, home);
}

describe('planforge rollout status', () => {
  let api: ApiUnderTest;
  let reg: Registry;
  let env: Record<string, string>;
  let home: string;

  beforeAll(async () => {
    home = mkdtempSync(join(tmpdir(), 'planforge-cli-rollout-'));
    api = await startRolloutApi();
    reg = await openRegistry(api);
    env = { PLANFORGE_URL: api.baseUrl, PLANFORGE_API_KEY: api.apiKey! };
  });

  afterAll(async () => {
    await reg?.close();
    await api?.app.close();
    await cleanupTestConfig();
    rmSync(home, { recursive: true, force: true });
  });

  it('promotes a canary and shows its state, share, window, checks against the limits and the decision', async () => {
    const [v1, v2] = await modelWithVersions(api, reg, 'cli-rollout', 'production', 2);
    expect((await putPolicy(api, 'cli-rollout', 'production', { watchSeconds: 600, minRequests: 200, maxP99Regression: 0.2, maxErrorRate: 0.01 })).statusCode).toBe(200);

    const none = await cli(['rollout', 'status', 'cli-rollout', 'production'], env, home);
    expect(none).toMatchObject({ code: 0, stdout: 'cli-rollout/production: no rollout\n' });

    const badCanary = await cli(['promote', 'cli-rollout', String(v2), '--channel', 'production', '--canary', 'lots'], env, home);
    expect(badCanary.code).toBe(2);
    expect(badCanary.stderr).toMatch(/--canary takes a percentage/);
    const promoted = await cli(['promote', 'cli-rollout', String(v2), '--channel', 'production', '--canary', '10', '--reason', 'canary from the CLI'], env, home);
    expect(promoted.stderr).toBe('');
    expect(promoted.code).toBe(0);
    expect(promoted.stdout).toMatch(new RegExp(`sm_86: v${v1} -> v${v2}`));

    // Both cohorts report: enough requests to judge, the same latency, no errors.
    const reporter = await mintKey(api, 'reporter');
    await reportFleet(api, reporter, { model: 'cli-rollout', channel: 'production', version: v2, devices: 20, devicePrefix: 'canary', requestsPerDevice: 20, p50Ms: 2, p99Ms: 5 });
    await reportFleet(api, reporter, { model: 'cli-rollout', channel: 'production', version: v1, devices: 20, devicePrefix: 'stable', requestsPerDevice: 20, p50Ms: 2, p99Ms: 5 });

    const text = await cli(['rollout', 'status', 'cli-rollout', 'production'], env, home);
    expect(text.stderr).toBe('');
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`^cli-rollout/production: rollout of v${v2} \\(from sm_86 v${v1}\\)\\n`));
    expect(text.stdout).toMatch(/\n {2}state: +watching\n/);
    expect(text.stdout).toMatch(/\n {2}canary: +10% of devices\n/);
    expect(text.stdout).toMatch(/\n {2}window remaining: +(59\d|600) s\n/);
    expect(text.stdout).toMatch(new RegExp(`scope all: candidate v${v2} 400 requests, baseline v${v1} 400 requests`));
    expect(text.stdout).toMatch(/CHECK +VALUE +LIMIT +STATUS +DETAIL/);
    expect(text.stdout).toMatch(/error_rate +0% +limit 1% +ok +error rate/);
    expect(text.stdout).toMatch(/p99_regression +0% +limit \+20% +ok +p99/);
    expect(text.stdout).toMatch(/\n {2}decision: +wait: healthy so far; watch window ends in \d+ s\n/);

    const asJson = await cli(['rollout', 'status', 'cli-rollout', 'production', '--json'], env, home);
    expect(asJson.code).toBe(0);
    const body = JSON.parse(asJson.stdout);
    expect(body).toMatchObject({ model: 'cli-rollout', channel: 'production', rollout: { version: v2, state: 'watching', canary: { percent: 10 } } });
    expect(body.rollout.windowRemainingSeconds).toBeGreaterThan(590);
    expect(body.rollout.evaluation.decision).toMatchObject({ action: 'wait' });
    const checks = body.rollout.evaluation.scopes[0].checks;
    expect(checks.map((c: { name: string; status: string; limit: number }) => [c.name, c.status, c.limit])).toEqual(
      expect.arrayContaining([
        ['error_rate', 'ok', 0.01],
        ['p99_regression', 'ok', 0.2],
      ]),
    );

    expect((await cli(['rollout', 'status', 'cli-rollout'], env, home)).code).toBe(2);
    expect((await cli(['rollout', 'frob', 'cli-rollout', 'production'], env, home)).code).toBe(2);
    const missing = await cli(['rollout', 'status', 'cli-rollout', 'nightly'], env, home);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/404|no channel/);
  });
});
