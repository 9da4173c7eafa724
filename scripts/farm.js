// `npm run farm`: a whole build farm on this machine. Bootstraps the checkout, starts
// Redis (AOF), Postgres and s3rver with their data under .farm/ (kept across runs), the
// API and one worker per target, builds the bundled sample model for every target and
// prints where its plans are. Runs until Ctrl-C, then stops everything in order.
// Node built-ins only at the top level: node_modules may not exist before bootstrap.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { bootstrapOrExit } from './bootstrap.js';
import {
  REPO_ROOT,
  hasExited,
  portOrFree,
  spawnService,
  startPostgres,
  startRedis,
  startS3rver,
  stopAll,
  waitForExit,
  waitUntil,
} from './services.js';

const FARM_DIR = join(REPO_ROOT, '.farm');
const LOG_DIR = join(FARM_DIR, 'logs');
const SAMPLE_MODEL = join(REPO_ROOT, 'samples', 'tiny-cnn.onnx');
const API_MAIN = join(REPO_ROOT, 'dist', 'apps', 'api', 'src', 'main.js');
const WORKER_MAIN = join(REPO_ROOT, 'dist', 'apps', 'worker', 'src', 'main.js');
const BUCKET = process.env.S3_BUCKET || 'planforge';
/** One worker per target; set in main() once the build exists (aliases such as "ampere" expand). */
let TARGETS = [];
const BUILD_TIMEOUT_MS = Number(process.env.FARM_BUILD_TIMEOUT_S || 900) * 1000;
const WORKER_STOP_TIMEOUT_MS = 60_000;
const ADMIN_KEY_FILE = join(FARM_DIR, 'admin-api-key');

const log = (msg) => process.stdout.write(`[farm] ${msg}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Services in start order (Redis, Postgres, s3rver); stopped in reverse. */
const services = [];
/** API and workers: {name, child}. */
const apps = [];
let shuttingDown = null;
/** Aborted by Ctrl-C: services still starting give up (and are killed) instead of being waited for. */
const startupAbort = new AbortController();
/** Settles when start-up is over, either way; shutdown waits for it so nothing half-started is left. */
let startup = Promise.resolve();

async function stopApps() {
  // Workers first (they finish or hand back their jobs), then the API.
  const workers = apps.filter((a) => a.name !== 'api');
  for (const w of workers) if (!hasExited(w.child)) w.child.kill('SIGTERM');
  await Promise.all(workers.map((w) => waitForExit(w.child, WORKER_STOP_TIMEOUT_MS)));
  for (const a of apps.filter((x) => x.name === 'api')) {
    if (!hasExited(a.child)) a.child.kill('SIGTERM');
    await waitForExit(a.child, 15_000);
  }
}

function shutdown(code) {
  if (!shuttingDown) {
    startupAbort.abort();
    shuttingDown = (async () => {
      await startup.catch(() => undefined);
      log('stopping workers, API, s3rver, Postgres, Redis …');
      await stopApps();
      await stopAll(services, log);
      log('stopped');
      process.exit(code);
    })();
  }
  return shuttingDown;
}

function spawnApp(name, script, env) {
  const logFile = join(LOG_DIR, `${name}.log`);
  const child = spawnService(process.execPath, ['--enable-source-maps', script], { logFile, env });
  child.on('exit', (code, signal) => {
    if (shuttingDown) return;
    log(`${name} exited unexpectedly (${signal ?? `code ${code}`}); see ${logFile}`);
    if (name === 'api') shutdown(1);
  });
  apps.push({ name, child, logFile });
  return { child, logFile };
}

/** ADMIN_API_KEY when set, else the farm's own key, made once and kept in .farm/admin-api-key. */
function adminApiKey() {
  if (process.env.ADMIN_API_KEY) return process.env.ADMIN_API_KEY;
  if (existsSync(ADMIN_KEY_FILE)) return readFileSync(ADMIN_KEY_FILE, 'utf8').trim();
  const key = `pf_${randomBytes(32).toString('base64url')}`;
  writeFileSync(ADMIN_KEY_FILE, `${key}\n`, { mode: 0o600 });
  return key;
}
let apiKey = '';

async function api(base, path, init = {}) {
  const res = await fetch(`${base}${path}`, { ...init, headers: { ...init.headers, authorization: `Bearer ${apiKey}` } });
  const text = await res.text();
  let body;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = text;
  }
  if (!res.ok) {
    throw new Error(`${init?.method ?? 'GET'} ${path} → ${res.status}: ${typeof body === 'string' ? body : JSON.stringify(body)}`);
  }
  return body;
}

const TERMINAL = new Set(['succeeded', 'partial', 'failed']);

async function buildSample(base) {
  const spec = { model: basename(SAMPLE_MODEL, '.onnx'), targets: TARGETS, precision: 'fp32', labels: { source: 'npm-run-farm' } };
  const form = new FormData();
  form.append('spec', JSON.stringify(spec));
  form.append('model', new Blob([readFileSync(SAMPLE_MODEL)], { type: 'application/octet-stream' }), basename(SAMPLE_MODEL));
  const submitted = await api(base, '/v1/builds', { method: 'POST', body: form });
  log(`submitted ${basename(SAMPLE_MODEL)} for ${TARGETS.join(', ')}: ${submitted.model} version ${submitted.version}, build ${submitted.buildId}`);

  const deadline = Date.now() + BUILD_TIMEOUT_MS;
  let lastLine = '';
  for (;;) {
    const build = await api(base, `/v1/builds/${submitted.buildId}`);
    const line = build.targets
      .map((t) => `${t.target} ${t.status}${t.status === 'running' ? ` ${t.stage ?? ''} ${Math.round(t.progress)}%` : ''}`)
      .join(' · ');
    if (line !== lastLine) log(`build ${build.status}: ${line}`);
    lastLine = line;
    if (TERMINAL.has(build.status)) return build;
    if (Date.now() > deadline) throw new Error(`build ${submitted.buildId} did not finish in ${BUILD_TIMEOUT_MS / 1000} s`);
    await sleep(1000);
  }
}

function printTable(rows, columns) {
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c] ?? '').length)));
  const line = (cells) => cells.map((c, i) => String(c ?? '').padEnd(widths[i])).join('  ').trimEnd();
  process.stdout.write(`${line(columns)}\n${line(widths.map((w) => '-'.repeat(w)))}\n`);
  for (const r of rows) process.stdout.write(`${line(columns.map((c) => r[c]))}\n`);
}

/** target → S3 key, as the registry recorded it (the API's plan metadata has no key). */
async function planKeys(databaseUrl, modelVersionId) {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query('SELECT target, s3_key FROM plans WHERE model_version_id = $1', [modelVersionId]);
    return new Map(rows.map((r) => [r.target, r.s3_key]));
  } finally {
    await client.end();
  }
}

async function printResult(base, build, databaseUrl) {
  const version = await api(base, `/v1/models/${encodeURIComponent(build.model)}/versions/${build.version}`);
  const plans = await Promise.all(Object.values(version.links.plans).map((url) => api(url, '')));
  const keys = await planKeys(databaseUrl, build.modelVersionId);
  process.stdout.write(`\nmodel ${build.model} version ${build.version}: ${version.status} (build ${build.buildId} ${build.status})\n\n`);
  const rows = plans
    .sort((a, b) => (a.target < b.target ? -1 : 1))
    .map((p) => ({
      target: p.target,
      location: `s3://${BUCKET}/${keys.get(p.target)}`,
      size: p.size,
      sha256: p.sha256,
    }));
  printTable(rows, ['target', 'location', 'size', 'sha256']);
  for (const t of build.targets.filter((x) => x.status === 'failed')) {
    process.stdout.write(`${t.target}: failed: ${t.error?.code ?? ''} ${t.error?.message ?? ''}\n`);
  }
  process.stdout.write('\n');
}

/** Services, API and workers; resolves with the API base URL and the registry URL. */
async function startFarm() {
  const signal = startupAbort.signal;

  const [redisPort, pgPort, s3Port, apiPort] = await Promise.all([
    portOrFree(Number(process.env.FARM_REDIS_PORT || 6379)),
    portOrFree(Number(process.env.FARM_PG_PORT || 5432)),
    portOrFree(Number(process.env.FARM_S3_PORT || 4568)),
    portOrFree(Number(process.env.API_PORT || 8080)),
  ]);

  services.push(await startRedis({ dir: join(FARM_DIR, 'redis'), port: redisPort, persistent: true, signal }));
  log(`redis    ${services[0].url} (AOF in .farm/redis)`);
  const pg = await startPostgres({
    dataDir: join(FARM_DIR, 'pg', 'data'),
    port: pgPort,
    app: { user: 'planforge', password: 'planforge', database: 'planforge' },
    signal,
  });
  services.push(pg);
  log(`postgres ${pg.url.replace(/:[^:@/]+@/, ':***@')} (data in ${pg.dataDir})`);
  const s3 = await startS3rver({ dir: join(FARM_DIR, 's3'), port: s3Port, bucket: BUCKET, signal });
  services.push(s3);
  log(`s3rver   ${s3.endpoint} bucket ${BUCKET} (objects in .farm/s3)`);

  const env = {
    ...process.env,
    REDIS_URL: services[0].url,
    DATABASE_URL: pg.url,
    S3_ENDPOINT: s3.endpoint,
    S3_REGION: s3.region,
    S3_BUCKET: BUCKET,
    S3_ACCESS_KEY_ID: s3.accessKeyId,
    S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
    S3_FORCE_PATH_STYLE: 'true',
    API_PORT: String(apiPort),
    // The API ensures this admin key at boot (stored hashed); the farm uses it for the sample build.
    ADMIN_API_KEY: apiKey,
    WORK_DIR: join(FARM_DIR, 'work'),
    // Logs go to files: no colour codes.
    NO_COLOR: '1',
  };

  // The API runs the registry migrations; workers start once it is ready so they never race it.
  const { child: apiChild, logFile: apiLog } = spawnApp('api', API_MAIN, env);
  const base = `http://127.0.0.1:${apiPort}`;
  await waitUntil('api', async () => (await fetch(`${base}/health/ready`)).ok, { child: apiChild, logFile: apiLog, timeoutMs: 120_000, signal });
  log(`api      ${base} (log .farm/logs/api.log; admin API key in ${process.env.ADMIN_API_KEY ? 'ADMIN_API_KEY' : '.farm/admin-api-key'})`);

  for (const target of TARGETS) {
    spawnApp(`worker-${target}`, WORKER_MAIN, { ...env, WORKER_TARGETS: target, WORKER_MODE: 'cross', WORKER_ID: `farm-${target}` });
  }
  log(`workers  ${TARGETS.join(', ')} (mode cross; logs .farm/logs/worker-<target>.log)`);
  return { base, databaseUrl: pg.url };
}

async function main() {
  bootstrapOrExit();
  mkdirSync(LOG_DIR, { recursive: true });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => shutdown(0));

  // After bootstrap the compiled contracts exist: the same target names and aliases as the API.
  const { expandTargets } = await import('../dist/libs/contracts/index.js');
  TARGETS = expandTargets((process.env.FARM_TARGETS || 'sm_80,sm_86,sm_87,sm_90').split(',').filter((t) => t.trim()));

  apiKey = adminApiKey();
  startup = startFarm();
  const { base, databaseUrl } = await startup;
  if (process.argv.includes('--no-sample')) {
    log('skipping the sample build (--no-sample)');
  } else {
    if (!existsSync(SAMPLE_MODEL)) {
      // The sample is tinyConvNet() of the test helpers: regenerate it rather than fail.
      const { writeSampleModel } = await import('../dist/test/helpers/onnx-builder.js');
      writeSampleModel(SAMPLE_MODEL);
      log(`wrote ${SAMPLE_MODEL}`);
    }
    const build = await buildSample(base);
    await printResult(base, build, databaseUrl);
  }
  log(`farm is running: API ${base}; Ctrl-C stops it. Try:`);
  const keyRef = process.env.ADMIN_API_KEY ? '$ADMIN_API_KEY' : '$(cat .farm/admin-api-key)';
  process.stdout.write(`  curl -H "Authorization: Bearer ${keyRef}" ${base}/v1/models\n`);
}

main().catch(async (err) => {
  if (shuttingDown) return; // Ctrl-C during start-up: not an error
  const userError = err?.name === 'UnknownTargetError';
  process.stderr.write(`[farm] ${userError ? `FARM_TARGETS: ${err.message}` : (err.stack ?? err)}\n`);
  await shutdown(1);
});
