// Telemetry intake benchmark: M simulated devices send reports to POST /v1/telemetry over
// loopback HTTP (keep-alive, C requests in flight), against the API as its own process
// (NODE_ENV=production, LOG_LEVEL=warn) on real Redis, Postgres (durable: fsync on) and
// s3rver, all started here in a temp dir on free ports. Measures reports/s, request
// latency p50/p99, rows written (row inserts + updates, HOT share) and the table's size.
//   npm run build && node bench/telemetry/ingest.js
// Scenarios: {buffered (TELEMETRY_FLUSH_MS=1000), written through (0)} × {gateway batches
// of BENCH_BATCH reports, one report per request}. Each runs BENCH_SECONDS (default 10 s).
// Writes bench/telemetry/results.json.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { stopAll } from '../../scripts/services.js';
import { API_MAIN, farmEnv, sleep, startBackingServices, startProcess, stopProcess, until } from '../bench-farm.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..', '..');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const DEVICES = Number(process.env.BENCH_DEVICES ?? 5000);
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 16);
const BATCH = Number(process.env.BENCH_BATCH ?? 100);
const TARGETS = ['sm_80', 'sm_86', 'sm_87', 'sm_90'];
const MODEL = 'fleet-model';
const CHANNEL = 'production';
const log = (m) => process.stderr.write(`[bench] ${m}\n`);

const { createDataSource, VersionRepository } = await import(join(ROOT, 'dist', 'libs', 'registry', 'index.js'));

function percentile(sorted, q) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** Device i: its target, and which version it runs (a 10 % canary on version 2). */
function device(i) {
  return { id: `device-${i}`, target: TARGETS[i % TARGETS.length], version: i % 10 === 0 ? 2 : 1 };
}

function reportOf(i, now) {
  const d = device(i);
  const requests = 40 + (i % 20);
  return {
    model: MODEL,
    channel: CHANNEL,
    target: d.target,
    version: d.version,
    deviceId: d.id,
    window: { start: now - 5000, end: now },
    requests,
    errors: i % 97 === 0 ? 1 : 0,
    latency: { p50Ms: 3 + (i % 7) * 0.1, p99Ms: 8 + (i % 13) * 0.2 },
  };
}

/** Sends batches of `batch` reports for SECONDS, C at a time; devices report round-robin. */
async function drive(base, key, batch) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
  const latencies = [];
  let reports = 0;
  let failures = 0;
  let next = 0;
  const statuses = {};
  const deadline = Date.now() + SECONDS * 1000;
  const post = (body) =>
    new Promise((resolve) => {
      const started = process.hrtime.bigint();
      const req = http.request(`${base}/v1/telemetry`, { method: 'POST', agent, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
        res.resume();
        res.on('end', () => {
          latencies.push(Number(process.hrtime.bigint() - started) / 1e6);
          statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
          resolve(res.statusCode);
        });
      });
      req.on('error', () => {
        failures++;
        resolve(0);
      });
      req.end(body);
    });
  const started = Date.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (Date.now() < deadline) {
        const now = Date.now();
        const items = [];
        for (let k = 0; k < batch; k++) items.push(reportOf(next++ % DEVICES, now));
        const status = await post(JSON.stringify(batch === 1 ? items[0] : items));
        if (status === 202) reports += batch;
        else failures++;
      }
    }),
  );
  const elapsed = (Date.now() - started) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return {
    batch,
    seconds: Number(elapsed.toFixed(2)),
    httpRequests: latencies.length,
    reports,
    reportsPerSec: Math.round(reports / elapsed),
    httpPerSec: Math.round(latencies.length / elapsed),
    p50Ms: Number(percentile(latencies, 0.5)?.toFixed(2)),
    p99Ms: Number(percentile(latencies, 0.99)?.toFixed(2)),
    maxMs: Number(latencies[latencies.length - 1]?.toFixed(2)),
    failures,
    statuses,
  };
}

async function tableStats(client) {
  const { rows } = await client.query(
    `SELECT (SELECT count(*) FROM telemetry_buckets)::int AS rows, pg_total_relation_size('telemetry_buckets')::bigint AS bytes,
            s.n_tup_ins::bigint AS inserts, s.n_tup_upd::bigint AS updates, s.n_tup_hot_upd::bigint AS hot_updates,
            (SELECT coalesce(sum(reports), 0) FROM telemetry_buckets)::bigint AS stored_reports
     FROM pg_stat_user_tables s WHERE s.relname = 'telemetry_buckets'`,
  );
  const r = rows[0];
  return { rows: r.rows, bytes: Number(r.bytes), inserts: Number(r.inserts), updates: Number(r.updates), hotUpdates: Number(r.hot_updates), storedReports: Number(r.stored_reports) };
}

const services = [];
const work = mkdtempSync(join(os.tmpdir(), 'planforge-telemetry-bench-'));
const results = {
  startedAt: new Date().toISOString(),
  machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, loadBefore: os.loadavg(), note: 'client, API, Postgres, Redis and s3rver share these cores' },
  settings: { seconds: SECONDS, devices: DEVICES, inFlight: IN_FLIGHT, batch: BATCH, targets: TARGETS.length, versions: 2, bucketSeconds: 60, postgres: 'fsync on, synchronous_commit on' },
  scenarios: [],
};
let api;
try {
  const backing = await startBackingServices(work, services, { durable: true });
  const { postgres, apiPort } = backing;
  const adminKey = `pf_bench_${randomBytes(24).toString('base64url')}`;
  const base = `http://127.0.0.1:${apiPort}`;
  const env = {
    ...farmEnv(backing, { adminKey, workDir: join(work, 'work') }),
    TELEMETRY_BUCKET_SECONDS: '60',
    ROLLOUT_WATCHER_ENABLED: 'false',
  };
  const db = new pg.Client({ connectionString: postgres.adminUrl });
  let reporterKey;
  for (const flushMs of [1000, 0]) {
    api = startProcess(API_MAIN, { ...env, TELEMETRY_FLUSH_MS: String(flushMs) }, join(HERE, `api-flush${flushMs}.log`)).child;
    await until('the API', async () => (await fetch(`${base}/health/live`)).ok, 60_000, 200);
    if (!reporterKey) {
      // Two versions of the model and its channel (the policy PUT creates the channel).
      const ds = await createDataSource(postgres.adminUrl, { migrationsRun: false, poolSize: 2 }).initialize();
      for (let v = 1; v <= 2; v++) {
        const sha = randomBytes(32).toString('hex');
        await new VersionRepository(ds).createVersionWithBuild({ modelName: MODEL, modelSha256: sha, modelKey: `models/${sha}.onnx`, modelSize: 1, spec: { model: MODEL, targets: TARGETS, precision: 'fp16', profiles: {}, layerPrecisions: {}, labels: {} }, specHash: sha, targets: TARGETS });
      }
      await ds.destroy();
      const auth = { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' };
      let res = await fetch(`${base}/v1/models/${MODEL}/channels/${CHANNEL}/policy`, { method: 'PUT', headers: auth, body: JSON.stringify({ minRequests: 1000 }) });
      if (!res.ok) throw new Error(`policy: ${res.status} ${await res.text()}`);
      res = await fetch(`${base}/v1/admin/keys`, { method: 'POST', headers: auth, body: JSON.stringify({ name: 'bench-fleet', role: 'reporter' }) });
      if (res.status !== 201) throw new Error(`key: ${res.status} ${await res.text()}`);
      reporterKey = (await res.json()).key;
      await db.connect();
    }
    for (const batch of [BATCH, 1]) {
      await db.query('TRUNCATE telemetry_buckets');
      await db.query('SELECT pg_stat_reset()');
      const mode = flushMs > 0 ? `buffered (flush ${flushMs} ms)` : 'written through';
      log(`${mode}, batch ${batch}: running ${SECONDS} s`);
      const run = await drive(base, reporterKey, batch);
      // Let the last flush land and the statistics collector catch up.
      await sleep(flushMs + 1500);
      const stats = await tableStats(db);
      const row = { mode, flushMs, ...run, table: stats, reportsPerRowWrite: Number((stats.storedReports / Math.max(1, stats.inserts + stats.updates)).toFixed(1)) };
      log(`  ${row.reportsPerSec} reports/s (${row.httpPerSec} req/s), p50 ${row.p50Ms} ms, p99 ${row.p99Ms} ms, rows ${stats.rows}, row writes ${stats.inserts + stats.updates} (${stats.hotUpdates} HOT), ${(stats.bytes / 1024).toFixed(0)} KiB, stored ${stats.storedReports} of ${run.reports}`);
      results.scenarios.push(row);
    }
    await stopProcess(api);
    api = undefined;
  }
  await db.end();
  results.settings.seconds = SECONDS;
  results.finishedAt = new Date().toISOString();
  results.machine.loadAfter = os.loadavg();
  writeFileSync(join(HERE, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  log(`wrote ${join(HERE, 'results.json')}`);
} finally {
  if (api) await stopProcess(api);
  await stopAll(services, log);
  rmSync(work, { recursive: true, force: true });
}
