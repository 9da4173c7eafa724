#!/usr/bin/env node
// Builds the native optimizer: the core static library, the planforge-opt CLI and the C++ unit
// tests (native/Makefile), then the Node addon (node-gyp, native/binding.gyp).
// Re-runs are fast: make is incremental and node-gyp only reconfigures when binding.gyp or the
// Node version changed, and only relinks when the core library or binding sources changed.
//   node scripts/build-native.js [--force] [--debug]
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const nativeDir = join(root, 'native');
const buildDir = join(nativeDir, 'build');
const stampPath = join(buildDir, '.addon-stamp.json');
const force = process.argv.includes('--force');
const jobs = process.env.PLANFORGE_BUILD_JOBS ?? '2';

function fail(message) {
  console.error(`build-native: ${message}`);
  process.exit(1);
}

function run(cmd, args, opts = {}) {
  console.log(`build-native: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: nativeDir, ...opts });
  if (r.error) fail(`cannot run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) fail(`${cmd} ${args[0] ?? ''} failed with exit code ${r.status}`);
}

// Prerequisites, with the apt package that provides each.
const prereqs = [
  ['/usr/include/onnx/onnx-ml.pb.h', 'libonnx-dev (ONNX protobuf headers): apt-get install libonnx-dev'],
  ['/usr/include/google/protobuf/message_lite.h', 'libprotobuf-dev: apt-get install libprotobuf-dev'],
];
for (const [path, hint] of prereqs) if (!existsSync(path)) fail(`missing ${path}; install ${hint}`);
if (spawnSync('make', ['--version'], { stdio: 'ignore' }).status !== 0) fail('make is not installed (apt-get install build-essential)');

// 1. Core library, CLI, unit tests.
run('make', [`-j${jobs}`, 'all']);

// 2. Addon. Inputs: binding sources, binding.gyp, the core library, the Node version.
const nodeGyp = join(root, 'node_modules', '.bin', 'node-gyp');
if (!existsSync(nodeGyp)) fail('node_modules/.bin/node-gyp not found: run npm install first');

function hashFiles(files) {
  const h = createHash('sha256');
  for (const f of files) {
    h.update(f);
    h.update(readFileSync(f));
  }
  return h.digest('hex');
}
function listFiles(dir) {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? listFiles(join(dir, e.name)) : [join(dir, e.name)]))
    .sort();
}
const headers = listFiles(join(nativeDir, 'src', 'core')).filter((f) => f.endsWith('.h'));
const bindingSources = [join(nativeDir, 'binding.gyp'), ...listFiles(join(nativeDir, 'src', 'binding')), ...headers];
const coreLib = join(buildDir, 'core', 'libplanforge_core.a');
const gypHash = hashFiles([join(nativeDir, 'binding.gyp')]) + process.version;
const inputsHash = hashFiles([...bindingSources, coreLib]) + process.version;
const stamp = existsSync(stampPath) ? JSON.parse(readFileSync(stampPath, 'utf8')) : {};
const addonPath = join(buildDir, 'Release', 'planforge_native.node');

// Node headers come from the system (/usr/include/node) when present, so no download is needed.
const nodeDir = process.env.npm_config_nodedir ?? (existsSync('/usr/include/node/node_api.h') ? '/usr' : undefined);
const gypArgs = nodeDir ? [`--nodedir=${nodeDir}`] : [];

if (force || stamp.gypHash !== gypHash || !existsSync(join(buildDir, 'Makefile'))) {
  // "configure" (not "rebuild"): rebuild would wipe native/build, including the core library.
  run(nodeGyp, ['configure', ...gypArgs]);
}
if (force || stamp.inputsHash !== inputsHash || !existsSync(addonPath)) {
  // node-gyp's make does not know the addon depends on the core archive: remove the linked
  // module (and its copy) so it is relinked whenever the archive changed.
  for (const f of [addonPath, join(buildDir, 'Release', 'obj.target', 'planforge_native.node')]) rmSync(f, { force: true });
  run(nodeGyp, ['build', `--jobs=${jobs}`, ...gypArgs]);
  mkdirSync(buildDir, { recursive: true });
  writeFileSync(stampPath, JSON.stringify({ gypHash, inputsHash }, null, 2));
} else {
  console.log('build-native: addon up to date');
}
if (!existsSync(addonPath)) fail(`expected ${addonPath} after the build`);
console.log(`build-native: ok (${addonPath}, ${statSync(addonPath).size} bytes)`);
