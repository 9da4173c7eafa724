// Brings a fresh checkout to a runnable state; shared by `npm run farm` and `npm test`.
// Node built-ins only: node_modules may not exist yet when this runs.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { REPO_ROOT, isRoot } from './services.js';

/** Debian packages the native optimizer and the embedded services need (chromium: the dashboard tests' headless browser). */
export const APT_PACKAGES = ['redis-server', 'libonnx-dev', 'libprotobuf-dev', 'protobuf-compiler', 'chromium', 'g++-aarch64-linux-gnu'];
/** Build tools (native addon, node-gyp): installed only when the command is missing, however it got there. */
export const BUILD_TOOLS = { 'g++': 'g++', make: 'make', python3: 'python3' };

const MIN_NODE = [20, 19];
/** Where TypeScript sources live (tsconfig.json "include"). */
const TS_ROOTS = ['apps', 'libs', 'test', 'bench'];
const TSC_STAMP = join(REPO_ROOT, 'dist', '.tsc-stamp');

const log = (msg) => process.stderr.write(`[bootstrap] ${msg}\n`);

class BootstrapError extends Error {
  constructor(message) {
    super(message);
    this.name = 'BootstrapError';
  }
}

function run(command, args, { env = process.env, cwd = REPO_ROOT } = {}) {
  log(`$ ${[command, ...args].join(' ')}`);
  const res = spawnSync(command, args, { cwd, env, stdio: 'inherit' });
  if (res.error) throw new BootstrapError(`${command}: ${res.error.message}`);
  if (res.status !== 0) throw new BootstrapError(`\`${[command, ...args].join(' ')}\` failed with exit code ${res.status}`);
}

function checkNodeVersion() {
  const [major, minor] = process.versions.node.split('.').map(Number);
  if (major < MIN_NODE[0] || (major === MIN_NODE[0] && minor < MIN_NODE[1])) {
    throw new BootstrapError(`Node ${MIN_NODE.join('.')}+ is required, this is ${process.version}`);
  }
}

function missingAptPackages() {
  const missing = [];
  for (const pkg of APT_PACKAGES) {
    const res = spawnSync('dpkg', ['-s', pkg], { encoding: 'utf8' });
    if (res.error) return null; // no dpkg: not Debian/Ubuntu
    if (res.status !== 0 || !/^Status: install ok installed$/m.test(res.stdout)) missing.push(pkg);
  }
  for (const [command, pkg] of Object.entries(BUILD_TOOLS)) {
    if (spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status !== 0) missing.push(pkg);
  }
  return missing;
}

function ensureAptPackages() {
  const missing = missingAptPackages();
  if (missing === null) {
    log(`dpkg not found: not a Debian/Ubuntu system; make sure these are installed: ${APT_PACKAGES.join(' ')}`);
    return;
  }
  if (missing.length === 0) return;
  const install = ['apt-get', 'install', '-y', '--no-install-recommends', ...missing];
  if (!isRoot()) {
    throw new BootstrapError(
      `missing Debian packages: ${missing.join(', ')}. Install them as root:\n  sudo apt-get update && sudo ${install.join(' ')}`,
    );
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  run('apt-get', ['update'], { env });
  run(install[0], install.slice(1), { env });
}

function mtime(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

function ensureNodeModules() {
  const marker = join(REPO_ROOT, 'node_modules', '.package-lock.json');
  const lock = join(REPO_ROOT, 'package-lock.json');
  const manifest = join(REPO_ROOT, 'package.json');
  const installed = mtime(marker);
  if (installed && installed >= mtime(lock) && installed >= mtime(manifest)) return;
  // onnxruntime-node would download CUDA binaries at install time; the CPU backend it ships is all we use.
  run('npm', ['install', '--no-audit', '--no-fund'], { env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' } });
  // npm leaves the marker untouched when there was nothing to do; touch it so the next run skips.
  if (existsSync(marker)) {
    const now = new Date();
    utimesSync(marker, now, now);
  }
}

function buildNative() {
  const script = join(REPO_ROOT, 'scripts', 'build-native.js');
  if (!existsSync(script)) throw new BootstrapError('scripts/build-native.js is missing: cannot build the native optimizer');
  run(process.execPath, [script]);
}

/** Newest mtime of any TypeScript source or directory (a deleted file changes its directory's mtime). */
function newestSource() {
  let newest = Math.max(mtime(join(REPO_ROOT, 'tsconfig.json')), mtime(join(REPO_ROOT, 'package.json')));
  const walk = (dir) => {
    newest = Math.max(newest, mtime(dir));
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name === 'node_modules') continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts')) newest = Math.max(newest, mtime(path));
    }
  };
  for (const root of TS_ROOTS) if (existsSync(join(REPO_ROOT, root))) walk(join(REPO_ROOT, root));
  return newest;
}

/** Deletes compiled files whose source is gone, so a removed test can't keep running from dist/. */
function pruneOrphans() {
  const dist = join(REPO_ROOT, 'dist');
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        walk(path);
        continue;
      }
      const m = /^(.*)\.js(\.map)?$/.exec(entry.name);
      if (!m) continue;
      const source = join(REPO_ROOT, relative(dist, dir), `${m[1]}.ts`);
      if (!existsSync(source)) unlinkSync(path);
    }
  };
  for (const root of TS_ROOTS) if (existsSync(join(dist, root))) walk(join(dist, root));
}

function buildTypeScript() {
  if (existsSync(TSC_STAMP) && mtime(TSC_STAMP) > newestSource()) {
    log('TypeScript output is up to date');
    return;
  }
  const startedAt = new Date();
  run(process.execPath, [join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json']);
  pruneOrphans();
  // Stamp with the start time: a source edited during the compile makes the next run compile again.
  writeFileSync(TSC_STAMP, `${startedAt.toISOString()}\n`);
  utimesSync(TSC_STAMP, startedAt, startedAt);
}

/**
 * apt packages (root installs, others get the command to run), npm install when the
 * lockfile changed, native addon + CLI, TypeScript. Throws BootstrapError with a
 * message meant for the user.
 */
export function bootstrap() {
  checkNodeVersion();
  ensureAptPackages();
  ensureNodeModules();
  buildNative();
  buildTypeScript();
}

/** Runs bootstrap(); on failure prints the reason and exits with code 1. */
export function bootstrapOrExit() {
  try {
    bootstrap();
  } catch (err) {
    process.stderr.write(`\n${err instanceof BootstrapError ? err.message : err.stack}\n`);
    process.exit(1);
  }
}
