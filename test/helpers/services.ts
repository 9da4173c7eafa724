/**
 * Real app processes for end-to-end tests: a worker is started exactly as in
 * production (`node dist/apps/worker/src/main.js` with its environment).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AppConfig } from '../../libs/config/index.js';
import { testConfigEnv, type EnvOverrides } from './env.js';

/** dist/test/helpers → repository root. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const WORKER_MAIN = join(REPO_ROOT, 'dist', 'apps', 'worker', 'src', 'main.js');

export interface AppProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** stdout + stderr so far (for failure messages). */
  output(): string;
  /** Sends `signal` (default SIGTERM) and resolves with the exit code (null = killed by a signal). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
}

/** Starts `node <script>` with `env` (added to a minimal base environment). */
export function startNodeProcess(name: string, script: string, env: Record<string, string>): AppProcess {
  if (!existsSync(script)) throw new Error(`${script} does not exist: build first (npm test runs tsc)`);
  const child = spawn(process.execPath, ['--enable-source-maps', script], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', LANG: 'C.UTF-8', NODE_ENV: 'test', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const append = (chunk: Buffer) => {
    log += chunk.toString();
    if (log.length > 200_000) log = log.slice(-100_000);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit) => {
    child.once('exit', (code, signal) => resolveExit({ code, signal }));
  });
  return {
    name,
    child,
    output: () => log,
    async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000) {
      const started = Date.now();
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      try {
        const result = await exited;
        return { ...result, ms: Date.now() - started };
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/**
 * A worker process on the isolated farm of `config` (see testConfig), e.g.
 * `startWorkerProcess(config, { WORKER_TARGETS: 'sm_90' })`.
 */
export function startWorkerProcess(config: AppConfig, overrides: EnvOverrides = {}): AppProcess {
  const env = testConfigEnv(config, overrides);
  return startNodeProcess(`worker ${env.WORKER_TARGETS}`, WORKER_MAIN, env);
}

/** Polls `check` every `intervalMs` until it returns a value other than undefined/false. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  { timeoutMs = 60_000, intervalMs = 250 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value as T;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
