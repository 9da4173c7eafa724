/** Runs the C++ unit tests (native/test/*.cc: one test per pass, plan format, importer) as one jest test. */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** dist/test/native → repository root. */
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const NATIVE_DIR = join(REPO_ROOT, 'native');
const BINARY = join(NATIVE_DIR, 'build', 'planforge-unit-tests');

describe('native C++ unit tests', () => {
  beforeAll(() => {
    // Incremental: a no-op when scripts/build-native.js already built everything.
    const r = spawnSync('make', ['-j2', 'build/planforge-unit-tests'], { cwd: NATIVE_DIR, encoding: 'utf8', maxBuffer: 32 << 20 });
    if (r.status !== 0) throw new Error(`building the unit tests failed:\n${r.stdout}\n${r.stderr}`);
  });

  it('all pass', () => {
    expect(existsSync(BINARY)).toBe(true);
    const r = spawnSync(BINARY, [], { encoding: 'utf8', maxBuffer: 32 << 20, timeout: 110_000 });
    const failures = r.stdout.split('\n').filter((l) => l.startsWith('FAIL') || l.startsWith('     '));
    expect(failures).toEqual([]);
    expect(r.stdout).toMatch(/\n\d+ passed, 0 failed\n/);
    expect(r.status).toBe(0);
  });
});
