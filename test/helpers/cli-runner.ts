import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from './services.js';

export const CLI = join(REPO_ROOT, 'bin', 'planforge.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node bin/planforge.js ARGS` with a clean environment (HOME decides which config file it sees). */
export function runCli(args: string[], env: Record<string, string>, home: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: home, LANG: 'C.UTF-8', CI: 'true', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
