import { PRECISIONS, TARGETS } from '../contracts/index.js';
import { BuildError } from './build-error.js';
import { loadAddon } from './native-addon.js';
import { isKnownDtype, tensorView } from './tensor-views.js';
import type { BuildPlanOptions, BuildSummary, ModelInfo, PlanInfo, RunPlanOptions, TensorValue } from './types.js';

/** Optimizer version recorded in every plan header. */
export const OPTIMIZER_VERSION: string = loadAddon().version;

/** Op types the CPU reference executor implements. */
export function supportedOps(): string[] {
  return [...loadAddon().supportedOps];
}

function invalid(message: string): never {
  throw new BuildError('E_INVALID_ARGUMENT', message);
}

function requirePath(value: unknown, name: string): string {
  if (typeof value !== 'string' || value.length === 0) invalid(`${name} must be a non-empty string`);
  if (value.includes('\0')) invalid(`${name} must not contain NUL characters`);
  return value;
}

function requireDims(value: unknown, what: string): number[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > 16) invalid(`${what} must be an array of 1 to 16 dimensions`);
  for (const d of value)
    if (!Number.isSafeInteger(d) || d < 1) invalid(`${what} must contain positive integers, got ${JSON.stringify(d)}`);
  return value as number[];
}

/** Calls native, converting rejections into BuildError with this call's JS stack. */
async function call<T>(promise: Promise<T>): Promise<T> {
  try {
    return await promise;
  } catch (err) {
    throw BuildError.fromNative(err);
  }
}

function invoke<T>(fn: () => Promise<T>): Promise<T> {
  let p: Promise<T>;
  try {
    p = fn();
  } catch (err) {
    return Promise.reject(BuildError.fromNative(err));
  }
  return call(p);
}

/** Reads a model and describes it (inputs, outputs, ops, unsupported ops). */
export async function checkModel(path: string): Promise<ModelInfo> {
  requirePath(path, 'path');
  return JSON.parse(await invoke(() => loadAddon().checkModel(path))) as ModelInfo;
}

/** Builds a plan off the main thread. Rejects with BuildError (E_CANCELLED when the signal aborts). */
export async function buildPlan(opts: BuildPlanOptions): Promise<BuildSummary> {
  if (!opts || typeof opts !== 'object') invalid('options must be an object');
  requirePath(opts.modelPath, 'modelPath');
  requirePath(opts.outputPath, 'outputPath');
  if (!(TARGETS as readonly string[]).includes(opts.target)) invalid(`target must be one of ${TARGETS.join(', ')}, got ${JSON.stringify(opts.target)}`);
  if (!(PRECISIONS as readonly string[]).includes(opts.precision)) invalid(`precision must be one of ${PRECISIONS.join(', ')}, got ${JSON.stringify(opts.precision)}`);
  const native: Record<string, unknown> = {
    modelPath: opts.modelPath,
    outputPath: opts.outputPath,
    target: opts.target,
    precision: opts.precision,
  };
  if (opts.profiles !== undefined) {
    if (!opts.profiles || typeof opts.profiles !== 'object') invalid('profiles must be an object');
    const profiles: Record<string, unknown> = {};
    for (const [input, p] of Object.entries(opts.profiles)) {
      if (!p || typeof p !== 'object') invalid(`profile for '${input}' must be {min, opt, max}`);
      profiles[input] = {
        min: requireDims(p.min, `profile '${input}' min`),
        opt: requireDims(p.opt, `profile '${input}' opt`),
        max: requireDims(p.max, `profile '${input}' max`),
      };
    }
    native.profiles = profiles;
  }
  if (opts.layerPrecisions !== undefined) {
    if (!opts.layerPrecisions || typeof opts.layerPrecisions !== 'object') invalid('layerPrecisions must be an object');
    for (const [layer, p] of Object.entries(opts.layerPrecisions))
      if (!(PRECISIONS as readonly string[]).includes(p)) invalid(`layer precision for '${layer}' must be one of ${PRECISIONS.join(', ')}`);
    native.layerPrecisions = { ...opts.layerPrecisions };
  }
  for (const key of ['specHash', 'modelSha256'] as const) {
    const v = opts[key];
    if (v !== undefined && typeof v !== 'string') invalid(`${key} must be a string`);
    if (v) native[key] = v;
  }
  if (opts.modelSha256 && !/^[0-9a-f]{64}$/.test(opts.modelSha256)) invalid('modelSha256 must be 64 lowercase hex characters');
  if (opts.calibration !== undefined) {
    const c = opts.calibration;
    if (!c || typeof c !== 'object') invalid('calibration must be an object');
    if (c.dataDir === undefined && c.cacheFile === undefined) invalid('calibration needs dataDir or cacheFile');
    if (c.dataDir !== undefined) requirePath(c.dataDir, 'calibration.dataDir');
    if (c.cacheFile !== undefined) requirePath(c.cacheFile, 'calibration.cacheFile');
    if (c.method !== undefined && !['entropy', 'minmax', 'percentile'].includes(c.method)) invalid('calibration.method must be entropy, minmax or percentile');
    if (c.percentile !== undefined && !(typeof c.percentile === 'number' && c.percentile > 50 && c.percentile <= 100))
      invalid('calibration.percentile must be a number in (50, 100]');
    native.calibration = { ...c };
  }
  if (opts.limits !== undefined) {
    if (!opts.limits || typeof opts.limits !== 'object') invalid('limits must be an object');
    const limits: Record<string, number> = {};
    for (const key of ['maxModelBytes', 'maxTensorBytes', 'maxTotalBytes'] as const) {
      const v = opts.limits[key];
      if (v === undefined) continue;
      if (!Number.isSafeInteger(v) || v < 1) invalid(`limits.${key} must be a positive integer number of bytes`);
      limits[key] = v;
    }
    native.limits = limits;
  }
  if (opts.passes !== undefined) {
    if (!Array.isArray(opts.passes) || opts.passes.some((p) => typeof p !== 'string')) invalid('passes must be an array of pass ids');
    native.passes = [...opts.passes];
  }
  if (opts.onProgress !== undefined && typeof opts.onProgress !== 'function') invalid('onProgress must be a function');
  const signal = opts.signal;
  if (signal?.aborted) throw new BuildError('E_CANCELLED', 'build cancelled before it started');

  const onProgress = opts.onProgress;
  // A throwing progress listener must not break the build.
  const progress = onProgress
    ? (stage: string, percent: number) => {
        try {
          onProgress(stage, percent);
        } catch {
          /* listener errors are the caller's concern */
        }
      }
    : undefined;
  let handle: ReturnType<ReturnType<typeof loadAddon>['buildPlan']>;
  try {
    handle = loadAddon().buildPlan(native, progress);
  } catch (err) {
    throw BuildError.fromNative(err);
  }
  const onAbort = () => handle.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return JSON.parse(await call(handle.promise)) as BuildSummary;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/** Validates a plan file and describes it (header, layers, profiles, pass statistics). */
export async function inspectPlan(path: string): Promise<PlanInfo> {
  requirePath(path, 'path');
  return JSON.parse(await invoke(() => loadAddon().inspectPlan(path))) as PlanInfo;
}

/**
 * Runs a plan on the CPU reference executor. Inputs outside the plan's profiles fail with E_PROFILE.
 * Output data is a typed array matching dtype (float16 as raw Uint16Array bits, bool as Uint8Array).
 */
export async function runPlan(
  planPath: string,
  inputs: Record<string, TensorValue>,
  options: RunPlanOptions = {},
): Promise<Record<string, TensorValue>> {
  requirePath(planPath, 'planPath');
  if (!inputs || typeof inputs !== 'object') invalid('inputs must be an object');
  const native: Record<string, { dtype: string; shape: number[]; data: ArrayBufferView }> = {};
  for (const [name, t] of Object.entries(inputs)) {
    if (!t || typeof t !== 'object') invalid(`input '${name}' must be {dtype, shape, data}`);
    if (typeof t.dtype !== 'string' || !isKnownDtype(t.dtype) || t.dtype === 'bfloat16') invalid(`input '${name}' has unsupported dtype ${JSON.stringify(t.dtype)}`);
    if (!Array.isArray(t.shape) || t.shape.some((d) => !Number.isSafeInteger(d) || d < 0)) invalid(`input '${name}' shape must be non-negative integers`);
    if (!ArrayBuffer.isView(t.data)) invalid(`input '${name}' data must be a TypedArray, Buffer or DataView`);
    native[name] = { dtype: t.dtype, shape: [...t.shape], data: t.data };
  }
  if (options.expectedSm !== undefined && !(TARGETS as readonly string[]).includes(options.expectedSm))
    invalid(`expectedSm must be one of ${TARGETS.join(', ')}`);
  const raw = await invoke(() => loadAddon().runPlan(planPath, native, options.expectedSm));
  const out: Record<string, TensorValue> = {};
  for (const [name, t] of Object.entries(raw)) {
    out[name] = { dtype: t.dtype, shape: t.shape, data: tensorView(t.dtype, t.data) ?? new Uint8Array(t.data) };
  }
  return out;
}
