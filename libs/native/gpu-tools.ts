import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { BuildError, isBuildErrorCode } from './build-error.js';
import { optimizerCliPath } from './native-addon.js';

/** What `planforge-opt tune --json` reports. */
export interface TuneResult {
  plan: string;
  planSha256: string;
  planSize: number;
  seconds: number;
  tunedLayers: number;
  timingCacheHits: number;
  tuneSeconds: number;
  [key: string]: unknown;
}

/**
 * Latency and throughput of a plan on this GPU, as stored in plans.profile: GPU time per
 * inference from CUDA events around one execution (a CUDA-graph launch), host time adds the
 * copies and the synchronisation. From `planforge-opt bench --json`.
 */
export interface GpuProfile {
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  hostP50Ms: number;
  hostP99Ms: number;
  throughputPerSecond: number;
  batch: number;
  inputs: Record<string, string>;
  iterations: number;
  cudaGraph: boolean;
  device: { name: string; sm: string; driverVersion: string };
}

/** GPU against CPU reference with the same synthetic inputs (`planforge-opt verify --synthetic --json`). */
export interface GpuVerification {
  pass: boolean;
  outputs: { name: string; shape?: string; maxAbs?: number; maxRel?: number; outsideTolerance?: number; pass?: boolean; error?: string }[];
}

export interface GpuToolOptions {
  /** Shapes to tune/measure at, by input name (default: each profile's opt shape, or the static shape). */
  shapes?: Record<string, readonly number[]>;
  signal?: AbortSignal;
  /** Bound on the child's run time (ms). */
  timeoutMs?: number;
}

const STDERR_ERROR = /^error (E_[A-Z_]+): (.*)$/m;

/**
 * The optimizer's GPU commands run in a child process (`planforge-opt`), not in the
 * worker: a kernel fault can leave a CUDA context unusable or take the process down,
 * and that must cost one attempt, not the worker. Errors come back as BuildError with
 * the CLI's code (E_NO_GPU, E_WRONG_SM, …).
 */
async function runCli(args: string[], opts: GpuToolOptions, okCodes: readonly number[] = [0]): Promise<unknown> {
  const cli = optimizerCliPath();
  if (!existsSync(cli)) throw new BuildError('E_NATIVE_UNAVAILABLE', `planforge-opt not found at ${cli}: run "npm run build:native" (or set PLANFORGE_OPT_PATH)`);
  if (opts.signal?.aborted) throw new BuildError('E_CANCELLED', 'cancelled before the GPU step started');
  return new Promise((resolve, reject) => {
    const child = spawn(cli, args, { stdio: ['ignore', 'pipe', 'pipe'], signal: opts.signal, timeout: opts.timeoutMs });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out.length < 4 << 20 ? (out += d) : undefined));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err.length < 1 << 20 ? (err += d) : undefined));
    child.on('error', (e: Error & { code?: string }) => {
      if (e.name === 'AbortError') reject(new BuildError('E_CANCELLED', `planforge-opt ${args[0]} stopped: cancelled`));
      else reject(new BuildError('E_INTERNAL', `planforge-opt ${args[0]} could not run: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      if (opts.signal?.aborted) return reject(new BuildError('E_CANCELLED', `planforge-opt ${args[0]} stopped: cancelled`));
      if (code !== null && okCodes.includes(code) && out.trim()) {
        try {
          return resolve(JSON.parse(out.trim().split('\n').at(-1) ?? ''));
        } catch {
          return reject(new BuildError('E_INTERNAL', `planforge-opt ${args[0]} printed no JSON result: ${out.slice(0, 300)}`));
        }
      }
      const m = STDERR_ERROR.exec(err);
      if (m && isBuildErrorCode(m[1])) return reject(new BuildError(m[1], m[2]));
      if (m && m[1] === 'E_USAGE') return reject(new BuildError('E_INVALID_ARGUMENT', m[2]));
      const why = signal ? `killed by ${signal}${signal === 'SIGTERM' && opts.timeoutMs ? ` (over ${opts.timeoutMs} ms)` : ''}` : `exit code ${code}`;
      reject(new BuildError('E_INTERNAL', `planforge-opt ${args[0]} failed (${why}): ${(err || out).trim().slice(-500)}`));
    });
  });
}

function shapeArgs(shapes: GpuToolOptions['shapes']): string[] {
  return Object.entries(shapes ?? {}).flatMap(([name, dims]) => {
    if (!/^[^=\s]{1,256}$/.test(name) || !dims.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new BuildError('E_INVALID_ARGUMENT', `shape for input "${name.slice(0, 100)}" must be non-negative integers`);
    }
    return ['--shape', `${name}=${dims.join('x')}`];
  });
}

/**
 * Autotunes a plan on this GPU: every candidate tactic of every layer is timed and the
 * fastest kept, looking measurements up in (and adding them to) the timing cache file.
 */
export async function tunePlanOnGpu(planPath: string, outputPath: string, timingCachePath: string, opts: GpuToolOptions = {}): Promise<TuneResult> {
  return (await runCli(['tune', planPath, '-o', outputPath, '--timing-cache', timingCachePath, ...shapeArgs(opts.shapes), '--json'], opts)) as TuneResult;
}

/** Measures a plan on this GPU like trtexec: GPU time per inference from CUDA events, throughput. */
export async function profilePlanOnGpu(planPath: string, opts: GpuToolOptions & { iterations?: number; warmup?: number } = {}): Promise<GpuProfile> {
  const args = ['bench', planPath, '--iterations', String(opts.iterations ?? 100), '--warmup', String(opts.warmup ?? 20), ...shapeArgs(opts.shapes), '--json'];
  type Stats = { p50: number; p90: number; p99: number };
  const r = (await runCli(args, opts)) as {
    gpuMs: Stats;
    hostMs: Stats;
    throughputPerSecond: number;
    batch: number;
    inputs: Record<string, string>;
    iterations: number;
    cudaGraph: boolean;
    device: { name: string; sm: number | string; driverVersion: string };
  };
  return {
    p50Ms: r.gpuMs.p50,
    p90Ms: r.gpuMs.p90,
    p99Ms: r.gpuMs.p99,
    hostP50Ms: r.hostMs.p50,
    hostP99Ms: r.hostMs.p99,
    throughputPerSecond: r.throughputPerSecond,
    batch: r.batch,
    inputs: r.inputs,
    iterations: r.iterations,
    cudaGraph: r.cudaGraph,
    device: { name: r.device?.name, sm: typeof r.device?.sm === 'number' ? `sm_${r.device.sm}` : String(r.device?.sm), driverVersion: r.device?.driverVersion },
  };
}

/** Runs a plan on this GPU and on the CPU reference with the same synthetic inputs and compares the outputs. */
export async function verifyPlanOnGpu(planPath: string, opts: GpuToolOptions & { rtol?: number; atol?: number } = {}): Promise<GpuVerification> {
  const args = ['verify', planPath, '--synthetic', ...shapeArgs(opts.shapes), ...(opts.rtol !== undefined ? ['--rtol', String(opts.rtol)] : []), ...(opts.atol !== undefined ? ['--atol', String(opts.atol)] : []), '--json'];
  // Exit 1 with a JSON report: outputs outside tolerance (a verdict, not a failure to run).
  const r = (await runCli(args, opts, [0, 1])) as GpuVerification;
  return { pass: r.pass === true, outputs: r.outputs ?? [] };
}

/** Merges timing caches (per key the faster entry wins) and keeps this optimizer version's entries. Needs no GPU. */
export async function mergeTimingCaches(outputPath: string, inputs: readonly string[], opts: GpuToolOptions = {}): Promise<{ entries: number; inputs: number; droppedOtherVersions: number }> {
  return (await runCli(['timing-cache', 'merge', '-o', outputPath, ...inputs, '--json'], opts)) as { entries: number; inputs: number; droppedOtherVersions: number };
}
