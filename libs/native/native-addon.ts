import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BuildError } from './build-error.js';

/** The raw addon surface (native/src/binding/binding.cc). Results are JSON strings. */
export interface NativeAddon {
  version: string;
  supportedOps: string[];
  checkModel(path: string): Promise<string>;
  inspectPlan(path: string): Promise<string>;
  buildPlan(options: Record<string, unknown>, onProgress?: (stage: string, percent: number) => void): { promise: Promise<string>; cancel(): void };
  runPlan(
    planPath: string,
    inputs: Record<string, { dtype: string; shape: number[]; data: ArrayBufferView }>,
    expectedSm?: string,
  ): Promise<Record<string, { dtype: string; shape: number[]; data: ArrayBuffer }>>;
  listDevices(): Promise<{ index: number; name: string; sm: string; multiprocessors: number; memoryBytes: number; driverVersion: string }[]>;
  gpuAvailable(): Promise<{ available: boolean; reason?: string; deviceCount?: number }>;
}

/** Repository root: this file is libs/native/ in sources and dist/libs/native/ once compiled. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'native', 'binding.gyp'))) return dir;
    dir = dirname(dir);
  }
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

/** Where the addon is looked for: PLANFORGE_NATIVE_PATH, else native/build/Release. */
export function addonPath(): string {
  return process.env.PLANFORGE_NATIVE_PATH || join(repoRoot(), 'native', 'build', 'Release', 'planforge_native.node');
}

/** The optimizer CLI (planforge-opt): PLANFORGE_OPT_PATH, else native/build/planforge-opt. */
export function optimizerCliPath(): string {
  return process.env.PLANFORGE_OPT_PATH || join(repoRoot(), 'native', 'build', 'planforge-opt');
}

let cached: NativeAddon | undefined;

export function loadAddon(): NativeAddon {
  if (cached) return cached;
  const path = addonPath();
  if (!existsSync(path))
    throw new BuildError('E_NATIVE_UNAVAILABLE', `planforge native addon not found at ${path}: run "npm run build:native" (or set PLANFORGE_NATIVE_PATH)`);
  try {
    cached = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (err) {
    throw new BuildError('E_NATIVE_UNAVAILABLE', `cannot load planforge native addon ${path}: ${(err as Error).message}`, { cause: err });
  }
  return cached;
}
