// `npm test [-- jest args]`: bootstrap, start throwaway Redis/Postgres/s3rver on random
// ports, run jest (native ESM) on the compiled tests, stop everything, exit with jest's code.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bootstrapOrExit } from './bootstrap.js';
import {
  REPO_ROOT,
  freePort,
  removeDir,
  startPostgres,
  startRedis,
  startS3rver,
  stopAll,
  waitForExit,
} from './services.js';

const log = (msg) => process.stderr.write(`[test] ${msg}\n`);

// PLANFORGE_SKIP_BOOTSTRAP=1: rerun tests against what is already built (quick edit-test loops).
if (process.env.PLANFORGE_SKIP_BOOTSTRAP !== '1') bootstrapOrExit();

const servicesRoot = join(REPO_ROOT, '.test-services');

/** Directories of earlier runs that died without cleaning up (their runner pid is gone). */
function removeStaleRuns() {
  if (!existsSync(servicesRoot)) return;
  for (const name of readdirSync(servicesRoot)) {
    const pid = Number(/-(\d+)$/.exec(name)?.[1]);
    if (!pid) continue;
    try {
      process.kill(pid, 0);
    } catch (err) {
      if (err.code === 'ESRCH') removeDir(join(servicesRoot, name));
    }
  }
}
removeStaleRuns();

const runId = `${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '')}-${process.pid}`;
const baseDir = join(servicesRoot, runId);
const services = [];
let jest = null;
let stopping = null;
let interrupted = false;
/** Settles when service start-up is over (either way): a Ctrl-C during start-up waits for it, then stops all. */
let startup = Promise.resolve();

async function shutdown(code) {
  if (!stopping) {
    stopping = (async () => {
      await startup.catch(() => undefined);
      await stopAll(services, log);
      removeDir(baseDir);
      // Postgres data lands outside baseDir when user postgres can't enter the checkout.
      const pgData = services.find((s) => s.name === 'postgres')?.dataDir;
      if (pgData && !pgData.startsWith(baseDir)) removeDir(pgData);
    })();
  }
  await stopping;
  process.exit(code);
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    log(`${signal}: stopping`);
    interrupted = true;
    // jest gets the signal too and exits; then the services go.
    if (jest && jest.exitCode === null) {
      jest.kill(signal);
      waitForExit(jest, 15_000).then(() => shutdown(130));
    } else shutdown(130);
  });
}

startup = (async () => {
  log(`starting services in ${baseDir}`);
  const [redisPort, pgPort, s3Port] = await Promise.all([freePort(), freePort(), freePort()]);
  // One at a time: services[] keeps start order for stopping, and a failure stops the rest.
  services.push(await startRedis({ dir: join(baseDir, 'redis'), port: redisPort }));
  services.push(await startPostgres({ dataDir: join(baseDir, 'pg', 'data'), port: pgPort, fast: true }));
  services.push(await startS3rver({ dir: join(baseDir, 's3'), port: s3Port, bucket: 'planforge' }));
})();
try {
  await startup;
} catch (err) {
  log(`could not start the test services: ${err.message}`);
  await shutdown(1);
}
if (stopping) await stopping; // interrupted during start-up: shutdown() exits

const [redis, postgres, s3] = services;
const env = {
  // The AWS SDK warns on every client in every jest worker that Node 20 support ends in 2027;
  // the runtime is pinned by the project, so the warning only buries real output.
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  ...process.env,
  REDIS_URL: redis.url,
  DATABASE_URL: postgres.adminUrl,
  PLANFORGE_TEST_PG_ADMIN_URL: postgres.adminUrl,
  S3_ENDPOINT: s3.endpoint,
  S3_ACCESS_KEY_ID: s3.accessKeyId,
  S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
  S3_REGION: s3.region,
  S3_BUCKET: s3.bucket,
  S3_FORCE_PATH_STYLE: 'true',
};
log(`redis ${redis.url} · postgres ${postgres.adminUrl} · s3 ${s3.endpoint}`);

const jestArgs = [
  '--experimental-vm-modules',
  join(REPO_ROOT, 'node_modules', 'jest', 'bin', 'jest.js'),
  '--config', join(REPO_ROOT, 'jest.config.js'),
  // The JSON summary lets us end with one plain "N passed, N failed" line that any CI reads.
  '--json', '--outputFile', join(baseDir, 'jest-summary.json'),
  ...process.argv.slice(2),
];
jest = spawn(process.execPath, jestArgs, {
  cwd: REPO_ROOT,
  env,
  stdio: 'inherit',
});
function printSummaryLine() {
  try {
    const summary = JSON.parse(readFileSync(join(baseDir, 'jest-summary.json'), 'utf8'));
    const skipped = summary.numPendingTests + summary.numTodoTests;
    process.stdout.write(`\njest: ${summary.numPassedTests} passed, ${summary.numFailedTests} failed${skipped ? `, ${skipped} skipped` : ''}\n`);
  } catch {
    // jest died before writing its summary: its exit code says enough.
  }
}

jest.on('error', (err) => {
  log(`could not run jest: ${err.message}`);
  shutdown(1);
});
jest.on('exit', (code, signal) => {
  printSummaryLine();
  if (stopping) return;
  if (interrupted) return shutdown(130);
  if (signal) log(`jest was killed by ${signal}`);
  shutdown(code ?? 1);
});
