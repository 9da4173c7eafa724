// Load benchmark of the API over loopback with autocannon, against real Redis, Postgres
// and s3rver (started here, in a temp dir, on free ports) and the API as its own process
// (NODE_ENV=production, LOG_LEVEL=warn). Bounded in time: each timed scenario runs
// BENCH_SECONDS (default 10 s). Writes bench/load/results.json and bench/load/REPORT.generated.md
// (the numbers; bench/load/REPORT.md holds them with the analysis).
//   npm run build && node bench/load/run.js
// Scenarios: a no-database baseline, build submission answered from the build cache, build
// status GET, resolve GET with and without If-None-Match, 10,000 builds queued at once (no
// worker running; every one accounted for in Postgres and Redis, then a bounded drain by one
// worker whose books must still balance), API RSS while a 1 GiB model uploads.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';
import { stopAll } from '../../scripts/services.js';
import { API_MAIN, WORKER_MAIN, farmEnv, sleep, startBackingServices, startProcess, until } from '../bench-farm.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..', '..');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const QUEUE_BUILDS = Number(process.env.BENCH_QUEUE_BUILDS ?? 10_000);
const UPLOAD_BYTES = Number(process.env.BENCH_UPLOAD_BYTES ?? 1024 ** 3);
const TARGET = 'sm_90';
// BENCH_SCENARIOS=health,submit,status,resolve,queue,upload (default all): a subset, e.g. while profiling.
const ONLY = new Set((process.env.BENCH_SCENARIOS ?? 'health,submit,status,resolve,queue,upload').split(','));
const log = (m) => process.stderr.write(`[bench] ${m}\n`);

const { makeModel, tinyConvNet } = await import(join(ROOT, 'dist', 'test', 'helpers', 'onnx-builder.js'));
const { targetQueueName, finalizeQueueName } = await import(join(ROOT, 'dist', 'libs', 'contracts', 'index.js'));

const BOUNDARY = '----planforge-bench-7f3a';
function multipart(spec, model) {
  return Buffer.concat([
    Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="spec"\r\n\r\n${JSON.stringify(spec)}\r\n`),
    Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="model"; filename="model.onnx"\r\nContent-Type: application/octet-stream\r\n\r\n`),
    model,
    Buffer.from(`\r\n--${BOUNDARY}--\r\n`),
  ]);
}

function rssMiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function call(base, key, method, path, { body, headers = {} } = {}) {
  const res = await fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${key}`, ...headers }, body });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
}

function cannon(opts) {
  return new Promise((resolve, reject) => {
    const settings = { connections: CONNECTIONS, duration: SECONDS, ...opts };
    // A fixed number of requests instead of a duration.
    if (settings.amount) delete settings.duration;
    const instance = autocannon(settings, (err, result) => (err ? reject(err) : resolve(result)));
    autocannon.track(instance, { renderProgressBar: false, renderResultsTable: false, renderLatencyTable: false, outputStream: { write() {} } });
  });
}

function summarize(name, result, extra = {}) {
  const row = {
    scenario: name,
    requests: result.requests.total,
    reqPerSec: Math.round(result.requests.average),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    maxMs: result.latency.max,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statusCodes: result.statusCodeStats,
    ...extra,
  };
  log(`${name}: ${row.reqPerSec} req/s, p50 ${row.p50Ms} ms, p99 ${row.p99Ms} ms, non-2xx ${row.non2xx}, errors ${row.errors}`);
  return row;
}

const services = [];
const procs = [];
const work = mkdtempSync(join(os.tmpdir(), 'planforge-bench-'));
const results = { startedAt: new Date().toISOString(), machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, loadBefore: os.loadavg() }, settings: { seconds: SECONDS, connections: CONNECTIONS }, scenarios: [] };
try {
  // BENCH_PG_FAST=1: fsync off (what the tests use); default: durable commits, as the farm runs Postgres.
  const backing = await startBackingServices(work, services, { durable: process.env.BENCH_PG_FAST !== '1' });
  const { redis, postgres, apiPort } = backing;
  const key = `pf_bench_${randomBytes(24).toString('base64url')}`;
  const env = {
    ...farmEnv(backing, { adminKey: key, workDir: join(work, 'work') }),
    // The per-key submission limit (default 120/min) would answer 429s: the bench measures the server itself.
    SUBMIT_RATE_LIMIT_PER_MINUTE: '0',
    WORKER_TARGETS: TARGET,
    WORKER_ID: 'bench-worker',
  };
  const api = startProcess(API_MAIN, env, join(work, 'api.log'), process.env.BENCH_API_NODE_ARGS ? process.env.BENCH_API_NODE_ARGS.split(' ') : []);
  procs.push(api);
  const base = `http://127.0.0.1:${apiPort}`;
  await until('the API', async () => (await fetch(`${base}/health/ready`)).status === 200);
  log(`API pid ${api.child.pid} on ${base}`);

  // ---- one real build, so that the next submissions hit the build cache and resolve has a plan
  const worker = startProcess(WORKER_MAIN, env, join(work, 'worker.log'));
  procs.push(worker);
  const model = tinyConvNet();
  const spec = { model: 'bench', targets: [TARGET], precision: 'fp32' };
  const first = await call(base, key, 'POST', '/v1/builds', { body: multipart(spec, model), headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` } });
  if (first.status !== 202) throw new Error(`first build answered ${first.status}: ${JSON.stringify(first.body)}`);
  const firstStatus = await until('the first build', async () => {
    const status = (await call(base, key, 'GET', `/v1/builds/${first.body.buildId}`)).body.status;
    return ['succeeded', 'partial', 'failed'].includes(status) && status;
  }, 300_000).catch((err) => {
    throw new Error(`${err.message}\n--- worker\n${worker.output().slice(-3000)}`);
  });
  if (firstStatus !== 'succeeded') throw new Error(`the first build ${firstStatus}\n--- worker\n${worker.output().slice(-3000)}`);
  worker.child.kill('SIGTERM');
  await until('the worker to stop', () => worker.child.exitCode !== null || worker.child.signalCode !== null, 30_000);
  const promoted = await call(base, key, 'POST', '/v1/models/bench/channels/prod/promote', { body: JSON.stringify({ version: 1 }), headers: { 'content-type': 'application/json' } });
  if (promoted.status !== 200) throw new Error(`promote answered ${promoted.status}: ${JSON.stringify(promoted.body)}`);
  const auth = { authorization: `Bearer ${key}` };
  // Postgres work per request: transactions committed, statements' rows, WAL flushes (pg_stat_database, pg_stat_wal).
  const statsClient = new pg.Client({ connectionString: postgres.adminUrl });
  statsClient.on('error', () => undefined);
  await statsClient.connect();
  const pgStats = async () =>
    (
      await statsClient.query(
        `SELECT (SELECT sum(xact_commit)::bigint FROM pg_stat_database) AS commits,
                (SELECT sum(tup_inserted + tup_updated + tup_deleted)::bigint FROM pg_stat_database) AS writes,
                (SELECT sum(tup_returned + tup_fetched)::bigint FROM pg_stat_database) AS reads,
                (SELECT wal_sync FROM pg_stat_wal) AS wal_syncs`,
      )
    ).rows[0];
  const measured = async (name, opts, extra = {}) => {
    const before = await pgStats();
    const result = await cannon(opts);
    await sleep(600); // pg_stat counters are flushed by backends about every 500 ms
    const after = await pgStats();
    const n = Math.max(1, result.requests.total);
    const per = (k) => Number(((Number(after[k]) - Number(before[k])) / n).toFixed(3));
    return summarize(name, result, { ...extra, postgresPerRequest: { commits: per('commits'), rowsWritten: per('writes'), walSyncs: per('wal_syncs') } });
  };

  // ---- warm-up (JIT, pools, caches), not reported
  await cannon({ url: `${base}/v1/resolve?model=bench&channel=prod&sm=90`, headers: auth, duration: 3 });

  // ---- the framework's ceiling on this machine: a public route without Postgres
  if (ONLY.has('health')) results.scenarios.push(await measured('GET /health/live (baseline: no auth, no database)', { url: `${base}/health/live` }));

  // ---- cache-hit submission
  if (ONLY.has('submit')) {
  const body = multipart(spec, model);
  const probe = await call(base, key, 'POST', '/v1/builds', { body, headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` } });
  results.scenarios.push(
    await measured(
      'POST /v1/builds (build-cache hit)',
      { url: `${base}/v1/builds`, method: 'POST', headers: { ...auth, 'content-type': `multipart/form-data; boundary=${BOUNDARY}` }, body },
      { sample: { status: probe.status, buildStatus: probe.body.status, cacheHits: probe.body.cacheHits } },
    ),
  );
  }

  // ---- build status
  if (ONLY.has('status')) results.scenarios.push(await measured('GET /v1/builds/:id', { url: `${base}/v1/builds/${first.body.buildId}`, headers: auth }));

  // ---- resolve, with and without a matching ETag
  const resolved = await fetch(`${base}/v1/resolve?model=bench&channel=prod&sm=90`, { headers: auth });
  const etag = resolved.headers.get('etag');
  if (ONLY.has('resolve')) results.scenarios.push(await measured('GET /v1/resolve (200, presigned URL)', { url: `${base}/v1/resolve?model=bench&channel=prod&sm=90`, headers: auth }));
  if (ONLY.has('resolve')) results.scenarios.push(await measured('GET /v1/resolve with If-None-Match (304)', { url: `${base}/v1/resolve?model=bench&channel=prod&sm=90`, headers: { ...auth, 'if-none-match': etag } }, { etag }));

  // ---- 10,000 builds queued at once (no worker runs: they all wait)
  if (ONLY.has('queue')) {
  const pgClient = new pg.Client({ connectionString: postgres.adminUrl });
  pgClient.on('error', () => undefined);
  await pgClient.connect();
  const buildsBefore = Number((await pgClient.query('SELECT count(*) FROM builds')).rows[0].count);
  const queuedModel = tinyConvNet({ size: 9 });
  const queueBody = multipart({ model: 'bench-queue', targets: [TARGET], precision: 'fp32' }, queuedModel);
  const started = Date.now();
  const queued = await cannon({ url: `${base}/v1/builds`, method: 'POST', headers: { ...auth, 'content-type': `multipart/form-data; boundary=${BOUNDARY}` }, body: queueBody, amount: QUEUE_BUILDS, connections: 16 });
  const queueMs = Date.now() - started;
  const accepted = queued.statusCodeStats?.['202']?.count ?? 0;
  const pgCounts = (await pgClient.query(`SELECT count(*)::int AS builds, count(*) FILTER (WHERE b.status = 'queued')::int AS queued FROM builds b JOIN model_versions v ON v.id = b.model_version_id JOIN models m ON m.id = v.model_id WHERE m.name = 'bench-queue'`)).rows[0];
  const targetRows = (await pgClient.query(`SELECT count(*)::int AS n FROM build_targets t JOIN builds b ON b.id = t.build_id JOIN model_versions v ON v.id = b.model_version_id JOIN models m ON m.id = v.model_id WHERE m.name = 'bench-queue' AND t.status = 'queued'`)).rows[0].n;
  const versions = (await pgClient.query(`SELECT count(*)::int AS n, count(DISTINCT version)::int AS distinct_versions, max(version)::int AS max FROM model_versions v JOIN models m ON m.id = v.model_id WHERE m.name = 'bench-queue'`)).rows[0];
  const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
  const targetQueue = new Queue(targetQueueName(TARGET, 'build'), { connection, prefix: 'planforge' });
  const finalizeQueue = new Queue(finalizeQueueName('build'), { connection, prefix: 'planforge' });
  const redisCounts = { [TARGET]: await targetQueue.getJobCounts(), finalize: await finalizeQueue.getJobCounts() };
  results.scenarios.push(
    summarize(`POST /v1/builds x ${QUEUE_BUILDS} (cache miss, queued)`, queued, {
      wallMs: queueMs,
      accepted,
      postgres: { ...pgCounts, queuedTargets: targetRows, versions },
      redis: redisCounts,
      noneLost: accepted === QUEUE_BUILDS && pgCounts.queued === accepted && targetRows === accepted && redisCounts[TARGET].waiting + (redisCounts[TARGET].prioritized ?? 0) === accepted && redisCounts.finalize['waiting-children'] === accepted && versions.distinct_versions === accepted,
    }),
  );
  // Drain for BENCH_DRAIN_SECONDS with one worker (all 10,000 take about 17 minutes on 2 cores: past the time bound), stop it
  // gracefully, and check the books balance: every accepted build is succeeded or still queued, in
  // Postgres and in Redis alike. Then the rest is obliterated.
  const queueScenario = results.scenarios.at(-1);
  const drainSeconds = Number(process.env.BENCH_DRAIN_SECONDS ?? 60);
  if (drainSeconds > 0) {
    const drainer = startProcess(WORKER_MAIN, { ...env, WORKER_ID: 'bench-drainer' }, join(work, 'drainer.log'));
    procs.push(drainer);
    await sleep(drainSeconds * 1000);
    drainer.child.kill('SIGTERM');
    await until('the draining worker to stop', () => drainer.child.exitCode !== null || drainer.child.signalCode !== null, 120_000);
    const byStatus = Object.fromEntries(
      (await pgClient.query(`SELECT b.status, count(*)::int AS n FROM builds b JOIN model_versions v ON v.id = b.model_version_id JOIN models m ON m.id = v.model_id WHERE m.name = 'bench-queue' GROUP BY 1`)).rows.map((r) => [r.status, r.n]),
    );
    const drainedRedis = { [TARGET]: await targetQueue.getJobCounts(), finalize: await finalizeQueue.getJobCounts() };
    const succeeded = byStatus.succeeded ?? 0;
    const stillQueued = byStatus.queued ?? 0;
    // Target built, finalize job not yet run (the worker stopped in between): 'running' in Postgres, a waiting finalize job in Redis.
    const finalizing = byStatus.running ?? 0;
    const redisTarget = drainedRedis[TARGET];
    const redisFinalize = drainedRedis.finalize;
    queueScenario.drain = {
      seconds: drainSeconds,
      workerExit: drainer.child.exitCode,
      postgres: byStatus,
      redis: drainedRedis,
      balanced:
        succeeded + finalizing + stillQueued === accepted &&
        redisTarget.completed - 1 === succeeded + finalizing && // minus the first (cache-filling) build's job
        redisTarget.waiting + (redisTarget.prioritized ?? 0) === stillQueued &&
        redisFinalize.waiting + (redisFinalize.prioritized ?? 0) + redisFinalize.active === finalizing &&
        redisFinalize['waiting-children'] === stillQueued,
    };
    log(`drain: ${JSON.stringify(queueScenario.drain)}`);
  }
  await targetQueue.obliterate({ force: true });
  await finalizeQueue.obliterate({ force: true });
  await targetQueue.close();
  await finalizeQueue.close();
  await connection.quit();
  await pgClient.end();
  log(`${buildsBefore} builds before the burst`);
  }

  // ---- API memory while a 1 GiB model streams in: a real model (one 1 GiB initializer: checked, stored
  // in S3, queued) and a 1 GiB file of one protobuf field repeated (refused by the check, 422).
  if (ONLY.has('upload')) {
    results.scenarios.push(await uploadScenario(api.child.pid, base, auth, 'model', UPLOAD_BYTES));
    results.scenarios.push(await uploadScenario(api.child.pid, base, auth, 'repeated-field', UPLOAD_BYTES));
  }

  await statsClient.end();
  results.machine.loadAfter = os.loadavg();
  results.finishedAt = new Date().toISOString();
  writeFileSync(join(HERE, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(join(HERE, 'REPORT.generated.md'), renderReport(results));
  log('wrote bench/load/results.json and bench/load/REPORT.generated.md');
} catch (err) {
  log(`failed: ${err.stack ?? err}`);
  process.exitCode = 1;
} finally {
  for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
  await sleep(1000);
  await stopAll(services, log);
  rmSync(work, { recursive: true, force: true });
  // Postgres data lands outside `work` when user postgres cannot enter it.
  const pgData = services.find((s) => s.name === 'postgres')?.dataDir;
  if (pgData) rmSync(pgData, { recursive: true, force: true });
}

/** Protobuf varint / field helpers for the streamed 1 GiB model. */
function varint(n) {
  const out = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return Buffer.from(out);
}
function fieldTag(field, wire) {
  return varint(field * 8 + wire);
}

/**
 * The bytes before the payload of a valid ONNX model whose graph holds one float32 initializer of
 * `rawBytes` bytes: x[1,1024] -> MatMul(W) -> y. A second ModelProto.graph field carries W (protobuf
 * merges the two), so the payload can follow as raw bytes streamed in chunks.
 */
function largeModelHead(rawBytes) {
  const k = 1024;
  const m = rawBytes / 4 / k;
  const small = makeModel({
    inputs: [{ name: 'x', shape: [1, k] }],
    outputs: [{ name: 'y', shape: [1, m] }],
    nodes: [{ op: 'MatMul', name: 'mm', inputs: ['x', 'W'], outputs: ['y'] }],
    graphName: 'bench_large',
  });
  const header = Buffer.concat([fieldTag(1, 0), varint(k), fieldTag(1, 0), varint(m), fieldTag(2, 0), varint(1), fieldTag(8, 2), varint(1), Buffer.from('W')]);
  const rawPrefix = Buffer.concat([fieldTag(9, 2), varint(rawBytes)]);
  const tensorLength = header.length + rawPrefix.length + rawBytes;
  const initPrefix = Buffer.concat([fieldTag(5, 2), varint(tensorLength)]);
  return Buffer.concat([small, fieldTag(7, 2), varint(initPrefix.length + tensorLength), initPrefix, header, rawPrefix]);
}

/** Streams a multipart submission of `bytes` bytes and samples the API's RSS every 200 ms. */
async function uploadScenario(pid, base, auth, kind, bytes) {
  const samples = [];
  const rssBefore = rssMiB(pid);
  // Each sample: [RSS MiB, bytes sent so far]: the transfer is told apart from what follows it (check, S3 upload).
  let sent = 0;
  const timer = setInterval(() => samples.push([rssMiB(pid), sent]), 200);
  const uploadStarted = Date.now();
  const head = kind === 'model' ? largeModelHead(bytes) : Buffer.alloc(0);
  const total = head.length + bytes;
  const uploadStatus = await new Promise((resolve, reject) => {
    const req = http.request(`${base}/v1/builds`, { method: 'POST', headers: { ...auth, 'content-type': `multipart/form-data; boundary=${BOUNDARY}` } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.write(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="spec"\r\n\r\n${JSON.stringify({ model: `bench-big-${kind}`, targets: [TARGET] })}\r\n`);
    req.write(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="model"; filename="big.onnx"\r\n\r\n`);
    req.write(head);
    sent = head.length;
    // 'model': payload bytes of W; 'repeated-field': 0x08 0x08 … = ModelProto.ir_version = 8, over and over.
    const chunk = Buffer.alloc(1024 * 1024, kind === 'model' ? 0x3c : 0x08);
    const pump = () => {
      while (sent < total) {
        const n = Math.min(chunk.length, total - sent);
        sent += n;
        if (!req.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void req.once('drain', pump);
      }
      req.end(`\r\n--${BOUNDARY}--\r\n`);
    };
    pump();
  });
  clearInterval(timer);
  samples.push([rssMiB(pid), sent]); // at the answer: a short upload may end before the first tick
  const uploadMs = Date.now() - uploadStarted;
  const rssMax = Math.max(...samples.map(([rss]) => rss));
  const during = samples.filter(([, b]) => b < total).map(([rss]) => rss);
  const after = samples.filter(([, b]) => b >= total).map(([rss]) => rss);
  const row = {
    scenario: `API RSS during a ${Math.round(bytes / 1024 ** 2)} MiB upload (${kind === 'model' ? 'a valid model: checked, stored in S3, queued' : 'one protobuf field repeated: refused by the check'})`,
    status: uploadStatus,
    uploadMs,
    mibPerSec: Math.round(total / 1024 ** 2 / (uploadMs / 1000)),
    rssBeforeMiB: Math.round(rssBefore),
    rssMaxMiB: Math.round(rssMax),
    rssGrowthMiB: Math.round(rssMax - rssBefore),
    rssMaxWhileStreamingMiB: Math.round(Math.max(...during)),
    rssMaxAfterLastByteMiB: after.length ? Math.round(Math.max(...after)) : null,
    samples: samples.length,
    timeline: samples.filter((_, i) => i % 5 === 0).map(([rss, b]) => [Math.round(rss), Math.round(b / 1024 ** 2)]),
  };
  log(`upload (${kind}): ${uploadStatus} in ${uploadMs} ms, RSS ${Math.round(rssBefore)} -> max ${Math.round(rssMax)} MiB`);
  return row;
}

/** The measured numbers as markdown (bench/load/REPORT.md adds the analysis). */
function renderReport(r) {
  const load = (l) => (l ? l.map((x) => x.toFixed(2)).join(' / ') : '?');
  const lines = [
    `Measured ${r.startedAt} → ${r.finishedAt} on ${r.machine.cpus} × ${r.machine.model}; load average (1/5/15 min) ${load(r.machine.loadBefore)} before, ${load(r.machine.loadAfter)} after.`,
    `autocannon: ${r.settings.connections} connections, ${r.settings.seconds} s per timed scenario, loopback, API as its own process (NODE_ENV=production, LOG_LEVEL=warn).`,
    '',
    '| scenario | requests | req/s | p50 ms | p99 ms | max ms | non-2xx | errors | Postgres commits / req | WAL flushes / req |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const s of r.scenarios) {
    if (s.reqPerSec === undefined) continue;
    const pgPer = s.postgresPerRequest ?? {};
    lines.push(`| ${s.scenario} | ${s.requests} | ${s.reqPerSec} | ${s.p50Ms} | ${s.p99Ms} | ${s.maxMs} | ${s.non2xx} | ${s.errors} | ${pgPer.commits ?? '-'} | ${pgPer.walSyncs ?? '-'} |`);
  }
  const queue = r.scenarios.find((s) => s.accepted !== undefined);
  if (queue) {
    lines.push('', `Queue burst: ${queue.accepted} accepted (202) in ${(queue.wallMs / 1000).toFixed(1)} s; Postgres ${JSON.stringify(queue.postgres)}; Redis ${JSON.stringify(queue.redis)}; none lost: **${queue.noneLost}**.`);
    if (queue.drain) lines.push('', `Drain: one worker for ${queue.drain.seconds} s, then SIGTERM (exit ${queue.drain.workerExit}): Postgres builds by status ${JSON.stringify(queue.drain.postgres)}; Redis ${JSON.stringify(queue.drain.redis)}; books balance (succeeded + finalizing + queued = accepted, in both): **${queue.drain.balanced}**.`);
  }
  for (const upload of r.scenarios.filter((s) => s.rssMaxMiB !== undefined)) {
    lines.push('', `${upload.scenario}: answered ${upload.status} after ${(upload.uploadMs / 1000).toFixed(1)} s (${upload.mibPerSec} MiB/s); API RSS ${upload.rssBeforeMiB} MiB before; at most ${upload.rssMaxWhileStreamingMiB} MiB while the bytes streamed in; at most ${upload.rssMaxAfterLastByteMiB ?? '-'} MiB after the last byte (the ONNX check, then S3 and the queue); ${upload.samples} samples every 200 ms.`);
  }
  return `${lines.join('\n')}\n`;
}
