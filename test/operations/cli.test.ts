/**
 * The planforge CLI run as a child process (`node bin/planforge.js`) against a
 * real API and worker: submit --wait with progress, status, logs, builds,
 * models, versions, promote, pull (sha256 verified), rollback, keys, cancel,
 * config sources, --json and the exit codes CI relies on.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WorkerHandle } from '../../apps/worker/src/index.js';
import { startApi, type ApiUnderTest } from '../api/api-test-kit.js';
import { runCli, type CliResult } from '../helpers/cli-runner.js';
import { cleanupTestConfig } from '../helpers/env.js';
import { makeModel } from '../helpers/onnx-builder.js';
import { startTestWorker, tinyModel } from './ops-kit.js';

const PROFILE = 'input=1x3x8x8/1x3x8x8/2x3x8x8';

function cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runCli(args, env, scratch);
}

let scratch = '';

describe('planforge CLI', () => {
  let api: ApiUnderTest;
  let worker: WorkerHandle;
  let env: Record<string, string>;
  let modelFile: string;

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'planforge-cli-'));
    api = await startApi();
    env = { PLANFORGE_URL: api.baseUrl, PLANFORGE_API_KEY: api.apiKey! };
    worker = await startTestWorker(api.config, ['sm_80', 'sm_86'], 'cli-worker');
    modelFile = join(scratch, 'Tiny CNN.onnx');
    writeFileSync(modelFile, tinyModel());
  });

  afterAll(async () => {
    await worker?.close();
    await api?.app.close();
    await cleanupTestConfig();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('submits with --wait, showing progress per target, and exits 0 when the build succeeds', async () => {
    const r = await cli(['submit', modelFile, '--targets', 'ampere', '--precision', 'fp32', '--profile', PROFILE, '--label', 'git=abc123', '--wait'], env);
    expect(r.stderr).toMatch(/build [0-9a-f-]{36}: tiny-cnn v1/);
    expect(r.stderr).toMatch(/sm_80 +\[#+\] 100% succeeded/);
    expect(r.stderr).toMatch(/sm_86 .* running .* on cli-worker \(cross\)/);
    expect(r.stdout).toMatch(/build [0-9a-f-]{36} succeeded/);
    expect(r.code).toBe(0);
  });

  it('reads status, logs, builds, models and versions, as text or --json', async () => {
    const list = await cli(['builds', '--model', 'tiny-cnn', '--json'], env);
    expect(list.code).toBe(0);
    const [build] = JSON.parse(list.stdout).builds;
    expect(build).toMatchObject({ model: 'tiny-cnn', version: 1, status: 'succeeded', targets: ['sm_80', 'sm_86'] });

    const status = await cli(['status', build.buildId], env);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/tiny-cnn v1 succeeded/);
    expect(status.stdout).toMatch(/sm_86 +succeeded +done +100% +cli-worker/);
    const statusJson = JSON.parse((await cli(['status', build.buildId, '--json'], env)).stdout);
    expect(statusJson.spec.labels).toEqual({ git: 'abc123' });

    const logs = await cli(['logs', build.buildId, 'sm_80'], env);
    expect(logs.code).toBe(0);
    expect(logs.stdout).toContain('target build succeeded');

    const models = await cli(['models'], env);
    expect(models.stdout).toMatch(/^MODEL +LATEST +VERSIONS/);
    expect(models.stdout).toMatch(/tiny-cnn +1 +1/);
    const versions = JSON.parse((await cli(['versions', 'tiny-cnn', '--json'], env)).stdout);
    expect(versions.versions[0]).toMatchObject({ version: 1, status: 'complete' });

    const workers = await cli(['workers'], env);
    expect(workers.stdout).toMatch(/cli-worker +alive .* sm_80,sm_86 +cross/);
  });

  it('promotes, pulls the plan with its sha256 verified, and rolls back with a reason', async () => {
    const v2 = await cli(['submit', modelFile, '--targets', 'sm_80', '--precision', 'fp32', '--profile', PROFILE, '--wait', '--json'], env);
    expect(v2.code).toBe(0);
    expect(JSON.parse(v2.stdout)).toMatchObject({ model: 'tiny-cnn', version: 2, build: { status: 'succeeded' } });

    const p1 = await cli(['promote', 'tiny-cnn', '1', '--channel', 'stable', '--target', 'sm_80', '--reason', 'first release'], env);
    expect(p1.stderr).toBe('');
    expect(p1.code).toBe(0);
    expect(p1.stdout).toMatch(/tiny-cnn\/stable: promote\n {2}sm_80: v- -> v1/);
    const p2 = await cli(['promote', 'tiny-cnn', '2', '--channel', 'stable', '--target', 'sm_80', '--json'], env);
    expect(p2.code).toBe(0);
    expect(JSON.parse(p2.stdout).changes[0]).toMatchObject({ target: 'sm_80', from: 1, to: 2 });

    const out = join(scratch, 'pulled.plan');
    const pull = await cli(['pull', '--model', 'tiny-cnn', '--channel', 'stable', '--sm', '80', '-o', out], env);
    expect(pull.code).toBe(0);
    expect(pull.stdout).toMatch(/tiny-cnn v2 sm_80 .* verified/);
    const sha = createHash('sha256').update(readFileSync(out)).digest('hex');
    expect(pull.stdout).toContain(sha);

    const noReason = await cli(['rollback', 'tiny-cnn', '--channel', 'stable'], env);
    expect(noReason.code).toBe(2);
    expect(noReason.stderr).toMatch(/--reason is required/);
    const rb = await cli(['rollback', 'tiny-cnn', '--channel', 'stable', '--reason', 'latency regression', '--target', 'sm_80'], env);
    expect(rb.code).toBe(0);
    expect(rb.stdout).toMatch(/sm_80: v2 -> v1/);
    const missing = await cli(['pull', '--model', 'tiny-cnn', '--channel', 'nightly', '--sm', '80', '-o', join(scratch, 'none.plan')], env);
    expect(missing.code).toBe(2);
    expect(existsSync(join(scratch, 'none.plan'))).toBe(false);
  });

  it('manages keys and exits 4 on missing or insufficient keys', async () => {
    const created = await cli(['keys', 'create', 'ci-viewer', '--role', 'viewer', '--json'], env);
    expect(created.code).toBe(0);
    const viewerKey = JSON.parse(created.stdout).key as string;
    const list = await cli(['keys'], env);
    expect(list.stdout).toMatch(/ci-viewer +viewer/);

    const asViewer = { PLANFORGE_URL: api.baseUrl, PLANFORGE_API_KEY: viewerKey };
    expect((await cli(['models'], asViewer)).code).toBe(0);
    const denied = await cli(['submit', modelFile, '--targets', 'sm_80', '--profile', PROFILE], asViewer);
    // The stderr in the failure message says which answer (or which socket error) it got.
    expect({ code: denied.code, stderr: denied.stderr }).toMatchObject({ code: 4, stderr: expect.stringMatching(/403/) });
    const anonymous = await cli(['models'], { PLANFORGE_URL: api.baseUrl });
    expect(anonymous.code).toBe(4);
    expect(anonymous.stderr).toMatch(/no API key/);
  });

  it('exits 1 when a build fails, 2 on usage errors, 3 when the server cannot be reached', async () => {
    const bad = join(scratch, 'mystery.onnx');
    writeFileSync(
      bad,
      makeModel({ inputs: [{ name: 'x', dtype: 'float32', shape: [1, 4] }], outputs: [{ name: 'y', dtype: 'float32', shape: [1, 4] }], nodes: [{ op: 'Mystery', inputs: ['x'], outputs: ['y'] }] }),
    );
    const failed = await cli(['submit', bad, '--targets', 'sm_80', '--wait', '--json'], env);
    expect(failed.code).toBe(1);
    const body = JSON.parse(failed.stdout);
    expect(body.build.status).toBe('failed');
    expect(body.build.targets[0].error.code).toBe('E_UNSUPPORTED_OP');

    expect((await cli(['submit', modelFile], env)).code).toBe(2); // no targets
    expect((await cli(['status', 'not-a-build'], env)).code).toBe(2);
    expect((await cli(['frobnicate'], env)).code).toBe(2);
    expect((await cli(['models', '--colour'], env)).code).toBe(2);
    expect((await cli(['models'], {})).code).toBe(2); // no URL anywhere
    const down = await cli(['models', '--json'], { PLANFORGE_URL: 'http://127.0.0.1:9', PLANFORGE_API_KEY: 'x' });
    expect(down.code).toBe(3);
    expect(JSON.parse(down.stdout)).toMatchObject({ exitCode: 3 });
  });

  it('reads the URL and key from the config file, flags winning over the environment', async () => {
    const config = join(scratch, 'config.json');
    writeFileSync(config, JSON.stringify({ url: api.baseUrl, apiKey: api.apiKey }));
    expect((await cli(['models'], { PLANFORGE_CONFIG: config })).code).toBe(0);
    // The default location: $HOME/.config/planforge/config.json
    const home = mkdtempSync(join(tmpdir(), 'planforge-home-'));
    try {
      const dir = join(home, '.config', 'planforge');
      (await import('node:fs')).mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ url: api.baseUrl, apiKey: api.apiKey }));
      expect((await cli(['models'], { HOME: home })).code).toBe(0);
      expect((await cli(['models', '--url', 'http://127.0.0.1:9'], { HOME: home })).code).toBe(3);
      expect((await cli(['models', '--api-key', 'pf_wrong_key_000000000000000'], { HOME: home })).code).toBe(4);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  it('cancels a queued build', async () => {
    const queued = await cli(['submit', modelFile, '--targets', 'sm_90', '--profile', PROFILE, '--json'], env);
    expect({ code: queued.code, stderr: queued.stderr }).toEqual({ code: 0, stderr: '' });
    const { buildId } = JSON.parse(queued.stdout);
    const r = await cli(['cancel', buildId, '--reason', 'superseded'], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/cancelled: sm_90/);
    const again = await cli(['cancel', buildId], env);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/409/);
  });
});
