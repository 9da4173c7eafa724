/**
 * Jetson Orin workers (sm_87) run on arm64 hosts: every native source of the core and the CLI
 * must compile there. Debian's cross compiler (g++-aarch64-linux-gnu, installed by
 * scripts/bootstrap.js) parses and type-checks each one for aarch64 (-fsyntax-only: templates
 * instantiated, no object code), with the same flags and headers as the host build.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const NATIVE = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'native');
const CROSS = 'aarch64-linux-gnu-g++';
const DIRS = ['src/core', 'src/core/ops', 'src/core/passes', 'src/core/plan', 'src/core/precision', 'src/core/gpu', 'src/cli'];

function check(file: string): Promise<{ file: string; status: number | null; output: string }> {
  return new Promise((done) => {
    const child = spawn(CROSS, ['-std=c++17', '-DONNX_ML=1', '-Wall', '-Wextra', '-Wno-unused-parameter', '-fsyntax-only', '-Isrc', file], { cwd: NATIVE });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('close', (status) => done({ file, status, output }));
    child.on('error', (err) => done({ file, status: -1, output: err.message }));
  });
}

describe('native sources on aarch64 (Jetson hosts)', () => {
  it('every core and CLI source compiles with the aarch64 cross compiler, without warnings', async () => {
    const version = spawnSync(CROSS, ['--version'], { encoding: 'utf8' });
    expect(version.status).toBe(0); // missing: scripts/bootstrap.js installs g++-aarch64-linux-gnu
    const files = DIRS.flatMap((d) => readdirSync(join(NATIVE, d)).filter((f) => f.endsWith('.cc')).map((f) => `${d}/${f}`));
    expect(files.length).toBeGreaterThan(50);
    const results: Awaited<ReturnType<typeof check>>[] = [];
    const queue = [...files];
    await Promise.all(
      Array.from({ length: Math.max(1, cpus().length) }, async () => {
        for (let f = queue.shift(); f; f = queue.shift()) results.push(await check(f));
      }),
    );
    const failed = results.filter((r) => r.status !== 0 || r.output.trim() !== '');
    expect(failed.map((r) => `${r.file}: ${r.output.slice(0, 2000)}`)).toEqual([]);
    process.stdout.write(`[aarch64] ${results.length} sources type-check for aarch64 (${version.stdout.split('\n')[0]})\n`);
  }, 600_000);
});
