/**
 * Shared by the fault tests: real API and worker processes (node dist/apps/.../main.js)
 * on an isolated farm, a model slow enough to be caught mid-build, and registry probes.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { makeModel, seededFloats } from '../helpers/onnx-builder.js';
import { REPO_ROOT, eventually, startNodeProcess, type AppProcess } from '../helpers/services.js';
import { testConfigEnv, type EnvOverrides } from '../helpers/env.js';
import type { AppConfig } from '../../libs/config/index.js';
import { multipartBody, multipartHeaders, request, sql, type HttpResult } from '../api/api-test-kit.js';

export const API_MAIN = join(REPO_ROOT, 'dist', 'apps', 'api', 'src', 'main.js');
export const WORKER_MAIN = join(REPO_ROOT, 'dist', 'apps', 'worker', 'src', 'main.js');

export const adminKey = () => `pf_fault_${randomBytes(24).toString('base64url')}`;

/**
 * A conv stack that takes the optimizer + verifier a few seconds on this machine:
 * `layers` 3x3 convolutions of `channels` channels over `size`x`size`, with a seed so
 * that two calls with different seeds never share a build-cache entry.
 */
export function slowConvNet({ layers = 6, channels = 24, size = 96, seed = 1 }: { layers?: number; channels?: number; size?: number; seed?: number } = {}): Buffer {
  const nodes = [];
  const initializers = [];
  let prev = 'input';
  for (let i = 0; i < layers; i++) {
    const cin = i === 0 ? 3 : channels;
    initializers.push({ name: `w${i}`, dims: [channels, cin, 3, 3], data: seededFloats(channels * cin * 9, seed * 100 + i, 0.2) });
    initializers.push({ name: `b${i}`, dims: [channels], data: seededFloats(channels, seed * 100 + 50 + i, 0.05) });
    nodes.push({ op: 'Conv', name: `conv${i}`, inputs: [prev, `w${i}`, `b${i}`], outputs: [`c${i}`], attrs: { kernel_shape: [3, 3], pads: [1, 1, 1, 1] } });
    nodes.push({ op: 'Relu', name: `relu${i}`, inputs: [`c${i}`], outputs: [`r${i}`] });
    prev = `r${i}`;
  }
  nodes.push({ op: 'GlobalAveragePool', name: 'gap', inputs: [prev], outputs: ['output'] });
  return makeModel({
    graphName: 'slow_cnn',
    inputs: [{ name: 'input', shape: [1, 3, size, size] }],
    outputs: [{ name: 'output', shape: [1, channels, 1, 1] }],
    initializers,
    nodes,
  });
}

/** An API process (`node dist/apps/api/src/main.js`) listening on a free port; resolves once it answers. */
export async function startApiProcess(config: AppConfig, key: string, overrides: EnvOverrides = {}): Promise<AppProcess & { baseUrl: string; apiKey: string }> {
  const env = testConfigEnv(config, { API_HOST: '127.0.0.1', API_PORT: '0', ADMIN_API_KEY: key, SUBMIT_RATE_LIMIT_PER_MINUTE: '0', ...overrides });
  const proc = startNodeProcess('api', API_MAIN, env);
  const url = await eventually('the API to listen', () => {
    if (proc.child.exitCode !== null) throw new Error(`api exited ${proc.child.exitCode}:\n${proc.output()}`);
    return /listening on (http:\/\/[^\s"]+)/.exec(proc.output())?.[1];
  }, { timeoutMs: 60_000, intervalMs: 100 });
  return Object.assign(proc, { baseUrl: url.replace('[::1]', '127.0.0.1').replace('0.0.0.0', '127.0.0.1'), apiKey: key });
}

/** A worker process with short BullMQ locks, so a killed worker's job comes back within seconds. */
export function startFaultWorker(config: AppConfig, id: string, overrides: EnvOverrides = {}): AppProcess {
  const env = testConfigEnv(config, {
    WORKER_ID: id,
    WORKER_LOCK_DURATION_MS: '3000',
    WORKER_STALLED_INTERVAL_MS: '1000',
    ...overrides,
  });
  return startNodeProcess(`worker ${id}`, WORKER_MAIN, env);
}

export function submitBuild(api: { baseUrl: string; apiKey?: string }, name: string, model: Buffer, targets: string[]): Promise<HttpResult> {
  const body = multipartBody([
    { name: 'spec', value: JSON.stringify({ model: name, targets, precision: 'fp32' }) },
    { name: 'model', value: model, filename: 'model.onnx' },
  ]);
  return request(api, { method: 'POST', url: '/v1/builds', headers: multipartHeaders(), payload: body });
}

export interface TargetRow {
  target: string;
  status: string;
  attempts: number;
  worker_id: string | null;
}

export async function targetRows(config: AppConfig, buildId: string): Promise<TargetRow[]> {
  return sql<TargetRow>(config, 'SELECT target, status, attempts, worker_id FROM build_targets WHERE build_id = $1 ORDER BY target', [buildId]);
}

export async function buildStatus(config: AppConfig, buildId: string): Promise<string | undefined> {
  return (await sql<{ status: string }>(config, 'SELECT status FROM builds WHERE id = $1', [buildId]))[0]?.status;
}

/** Waits for the build to reach a final status; the workers' logs are in the failure message. */
export async function waitForBuild(config: AppConfig, buildId: string, procs: AppProcess[], timeoutMs = 120_000): Promise<string> {
  return eventually(`build ${buildId} to finish`, async () => {
    const status = await buildStatus(config, buildId);
    return status && ['succeeded', 'partial', 'failed'].includes(status) ? status : undefined;
  }, { timeoutMs, intervalMs: 300 }).catch((err: Error) => {
    throw new Error(`${err.message}\n${procs.map((p) => `--- ${p.name}\n${p.output().slice(-3000)}`).join('\n')}`);
  });
}

// ------------------------------------------------------------------ services of our own

export interface OwnService {
  name: string;
  port: number;
  stop(): Promise<void>;
}

interface ServicesModule {
  freePort(): Promise<number>;
  startPostgres(opts: { dataDir: string; port: number; fast?: boolean }): Promise<OwnService & { adminUrl: string; url: string; dataDir: string }>;
  startS3rver(opts: { dir: string; port: number; bucket?: string }): Promise<OwnService & { endpoint: string }>;
  spawnService(command: string, args: string[], opts: { logFile: string }): import('node:child_process').ChildProcess;
  waitUntil(name: string, probe: () => Promise<boolean>, opts: { child?: unknown; logFile?: string; timeoutMs?: number }): Promise<void>;
  hasExited(child: unknown): boolean;
  waitForExit(child: unknown, ms?: number): Promise<number | null>;
}

/** scripts/services.js (plain JS, outside the TS project): the same start/stop helpers npm test uses. */
export async function servicesModule(): Promise<ServicesModule> {
  const { pathToFileURL } = await import('node:url');
  return (await import(pathToFileURL(join(REPO_ROOT, 'scripts', 'services.js')).href)) as ServicesModule;
}

/**
 * A Redis of this test only, AOF on and fsynced on every write (`--appendonly yes
 * --appendfsync always`), so that a kill -9 loses nothing; `kill()` then `start()` again
 * on the same port and directory is a crash and a restart.
 */
export async function aofRedis(dir: string): Promise<{ url: string; port: number; start(): Promise<void>; kill(): Promise<void> }> {
  const svc = await servicesModule();
  const port = await svc.freePort();
  const { Redis } = await import('ioredis');
  let child: import('node:child_process').ChildProcess | undefined;
  const logFile = join(dir, 'redis.log');
  const start = async () => {
    child = svc.spawnService('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--dir', dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--maxmemory-policy', 'noeviction'], { logFile });
    await svc.waitUntil('redis-server', async () => {
      const probe = new Redis(`redis://127.0.0.1:${port}`, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      try {
        await probe.connect();
        return (await probe.ping()) === 'PONG';
      } finally {
        probe.disconnect();
      }
    }, { child, logFile, timeoutMs: 30_000 });
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    start,
    async kill() {
      if (child && !svc.hasExited(child)) {
        child.kill('SIGKILL');
        await svc.waitForExit(child, 10_000);
      }
    },
  };
}

/** Resolves with the response, or rejects when none came within `ms` (a hang is a failure). */
export async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
