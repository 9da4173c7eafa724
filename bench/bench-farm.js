// What the API benchmarks share: throwaway Redis / Postgres / s3rver on free loopback ports
// (scripts/services.js), the API's environment for them, farm processes (API, worker) with
// their output kept and written to a log when they exit, and polling until something holds.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, startPostgres, startRedis, startS3rver } from '../scripts/services.js';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const API_MAIN = join(ROOT, 'dist', 'apps', 'api', 'src', 'main.js');
export const WORKER_MAIN = join(ROOT, 'dist', 'apps', 'worker', 'src', 'main.js');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts Redis, Postgres (`durable`: fsync on, as the farm runs it; else what the tests use) and
 * s3rver under `work`, each pushed onto `services` as soon as it runs (for stopAll), and picks a
 * free port for the API. Returns the three services and that port.
 */
export async function startBackingServices(work, services, { durable = true } = {}) {
  const [redisPort, pgPort, s3Port, apiPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  services.push(await startRedis({ dir: join(work, 'redis'), port: redisPort }));
  services.push(await startPostgres({ dataDir: join(work, 'pg', 'data'), port: pgPort, fast: !durable }));
  services.push(await startS3rver({ dir: join(work, 's3'), port: s3Port, bucket: 'planforge' }));
  const [redis, postgres, s3] = services.slice(-3);
  return { redis, postgres, s3, apiPort };
}

/** The API's (and a worker's) environment for those services, in production mode, logging warnings only. */
export function farmEnv({ redis, postgres, s3, apiPort }, { adminKey, workDir }) {
  return {
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    REDIS_URL: redis.url,
    DATABASE_URL: postgres.adminUrl,
    S3_ENDPOINT: s3.endpoint,
    S3_BUCKET: 'planforge',
    S3_ACCESS_KEY_ID: s3.accessKeyId,
    S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
    API_HOST: '127.0.0.1',
    API_PORT: String(apiPort),
    ADMIN_API_KEY: adminKey,
    WORK_DIR: workDir,
  };
}

/** Runs a farm entry point (API_MAIN, WORKER_MAIN) with only `env` (plus PATH, HOME); its output goes to `logFile` on exit. */
export function startProcess(script, env, logFile, nodeArgs = []) {
  const child = spawn(process.execPath, [...nodeArgs, script], { cwd: ROOT, env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (d) => {
    out += d;
    if (out.length > 100_000) out = out.slice(-50_000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.on('exit', () => writeFileSync(logFile, out));
  return { child, output: () => out };
}

/** SIGTERM, then waits for the exit (at most 15 s). */
export async function stopProcess(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([exited, sleep(15_000)]);
}

/** Polls `probe` (errors count as "not yet") until it returns something truthy, which is returned. */
export async function until(what, probe, ms = 120_000, everyMs = 250) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}
