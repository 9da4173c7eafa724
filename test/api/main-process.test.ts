/** dist/apps/api/src/main.js as an operator runs it: plain node, env config, SIGTERM. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { cleanupTestConfig, testConfig, testConfigEnv } from '../helpers/env.js';

// dist/test/api/main-process.test.js -> dist/apps/api/src/main.js
const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'apps', 'api', 'src', 'main.js');

function run(env: Record<string, string>): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  let output = '';
  const child = spawn(process.execPath, [MAIN], { env: { PATH: process.env.PATH ?? '', NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

async function waitFor<T>(probe: () => T | undefined, what: string, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('api main process', () => {
  afterAll(() => cleanupTestConfig());

  it('boots from the environment, serves, and exits 0 on SIGTERM', async () => {
    const config = await testConfig();
    const proc = run(testConfigEnv(config, { API_PORT: '0', API_HOST: '127.0.0.1' }));
    try {
      const url = await waitFor(() => /listening on (http:\/\/[^\s"]+)/.exec(proc.output())?.[1], `the listening line in:\n${proc.output()}`);
      const ready = await fetch(`${url.replace('[::1]', '127.0.0.1')}/health/ready`);
      expect(ready.status).toBe(200);
      proc.child.kill('SIGTERM');
      expect(await proc.exited).toBe(0);
    } finally {
      proc.child.kill('SIGKILL');
    }
  });

  it('refuses to start on a bad variable and names it', async () => {
    const proc = run({ REDIS_URL: 'http://not-redis', API_PORT: '0' });
    expect(await proc.exited).toBe(78);
    expect(proc.output()).toContain('REDIS_URL');
  });
});
