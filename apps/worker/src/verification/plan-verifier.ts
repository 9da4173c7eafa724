import type { Precision } from '../../../../libs/contracts/index.js';
import { BuildError, runPlan, type ProfileDims, type ValueInfo } from '../../../../libs/native/index.js';
import { OnnxReference } from './onnx-reference.js';
import { OutputComparison, type OutputMetrics } from './output-comparison.js';
import { SeededRandom } from './seeded-random.js';
import {
  DEFAULT_VERIFICATION_SAMPLES,
  DEFAULT_VERIFICATION_SEED,
  MAX_VERIFICATION_SAMPLES,
  effectivePrecision,
  resolveTolerance,
  type VerificationTolerance,
} from './tolerances.js';
import { VerificationError } from './verification-error.js';
import { loadSampleInputs, randomInputs, verificationInputShapes } from './verification-inputs.js';

/** The spec's `verification` section (libs/contracts/build-spec.ts). */
export interface VerificationSettings {
  samples?: number;
  seed?: number;
  tolerance?: Partial<Record<keyof VerificationTolerance, number>>;
}

/** Stored in plans.verification and served by the plan endpoint. */
export interface VerificationReport {
  passed: boolean;
  /** Verification runs, each on fresh inputs of the shapes in `inputShapes`. */
  samples: number;
  /** 'calibration': the first batches of the build's calibration data; 'random': seeded random tensors. */
  inputs: 'calibration' | 'random';
  seed: number;
  /** Precision whose default tolerance applies (the loosest of the plan's and its layers'). */
  precision: Precision;
  inputShapes: Record<string, number[]>;
  outputs: Record<string, OutputMetrics>;
  /** Worst over outputs: max of maxAbs / maxRel, min of top1 (null when no output has one). */
  maxAbs: number;
  maxRel: number;
  top1: number | null;
  tolerance: VerificationTolerance;
  /** Why it did not pass, one line per bound exceeded. */
  failures: string[];
  reference: string;
  durationMs: number;
}

export interface VerifyPlanOptions {
  planPath: string;
  modelPath: string;
  /** checkModel(modelPath).inputs */
  modelInputs: readonly ValueInfo[];
  precision: Precision;
  layerPrecisions?: Record<string, string>;
  profiles?: Record<string, ProfileDims>;
  settings?: VerificationSettings;
  /**
   * Calibration data folder (DIR/<batch>/<input>.npy): its batches are the inputs, up to
   * `samples` of them, instead of random tensors (INT8 is judged on the data it was calibrated for).
   */
  sampleDir?: string;
  /** 0-100, after each sample. */
  onProgress?: (percent: number) => void;
  signal?: AbortSignal;
}

const num = (v: number) => (v === 0 ? '0' : Math.abs(v) >= 1e-3 && Math.abs(v) < 1e4 ? String(Number(v.toPrecision(3))) : v.toExponential(2));

/** FP16's largest finite value: activations beyond it become Inf, then NaN. */
const FP16_MAX = 65504;

function checkBounds(name: string, m: OutputMetrics, tol: VerificationTolerance, precision: string): string[] {
  const out: string[] = [];
  if (m.nonFiniteMismatches > 0) {
    const overflow =
      precision !== 'fp32' && m.planOnlyNonFinite > 0
        ? ` (${m.planOnlyNonFinite} NaN/Inf from the plan where the FP32 model is finite: an activation likely exceeds ` +
          `${precision === 'fp16' ? `FP16's range of ±${FP16_MAX}` : 'its reduced-precision range'}; keep the layers that overflow in fp32 with spec.layerPrecisions, or build fp32)`
        : '';
    out.push(`output '${name}': ${m.nonFiniteMismatches} elements are NaN/Inf on one side only${overflow}`);
  }
  if (tol.maxAbs !== null && !(m.scaledMaxAbs <= tol.maxAbs))
    out.push(`output '${name}': max abs error ${num(m.maxAbs)} (${num(m.scaledMaxAbs)} of its scale ${num(Math.max(1, m.scale))}) exceeds ${num(tol.maxAbs)}`);
  if (tol.maxRel !== null && !(m.maxRel <= tol.maxRel)) out.push(`output '${name}': max rel error ${num(m.maxRel)} exceeds ${num(tol.maxRel)}`);
  if (tol.minTop1 !== null && m.top1 !== null && !(m.top1 >= tol.minTop1)) out.push(`output '${name}': top-1 agreement ${num(m.top1)} is below ${num(tol.minTop1)}`);
  return out;
}

/**
 * Runs a built plan on the CPU reference executor (runPlan, native thread) and the original
 * model on onnxruntime (worker thread) over the same seeded random inputs, and measures how
 * far apart their outputs are. Resolves with the report whether or not it passed; rejects with
 * VerificationError when the comparison itself cannot be made (a run fails, outputs differ in
 * shape), and with BuildError E_CANCELLED when the signal aborts.
 */
export async function verifyPlan(opts: VerifyPlanOptions): Promise<VerificationReport> {
  const started = performance.now();
  const samples = Math.min(MAX_VERIFICATION_SAMPLES, Math.max(1, Math.floor(opts.settings?.samples ?? DEFAULT_VERIFICATION_SAMPLES)));
  const seed = (opts.settings?.seed ?? DEFAULT_VERIFICATION_SEED) >>> 0;
  const precision = effectivePrecision(opts.precision, opts.layerPrecisions);
  const tolerance = resolveTolerance(precision, opts.settings?.tolerance);
  const rng = new SeededRandom(seed);
  const given = opts.sampleDir ? await loadSampleInputs(opts.sampleDir, opts.modelInputs, samples) : [];
  const shapes = given.length
    ? Object.fromEntries(Object.entries(given[0]).map(([name, t]) => [name, t.shape]))
    : verificationInputShapes(opts.modelInputs, opts.profiles);
  const runs = given.length || samples;
  const cancelled = () => {
    if (opts.signal?.aborted) throw new BuildError('E_CANCELLED', 'build cancelled during verification');
  };

  cancelled();
  const reference = await OnnxReference.open(opts.modelPath);
  const comparisons = new Map<string, OutputComparison>();
  try {
    const outputNames = reference.outputNames;
    for (const name of outputNames) comparisons.set(name, new OutputComparison(name));
    for (let s = 0; s < runs; s++) {
      cancelled();
      const inputs = given.length ? given[s] : randomInputs(opts.modelInputs, shapes, rng);
      const [planOutputs, refOutputs] = await Promise.all([
        runPlan(opts.planPath, inputs).catch((err: unknown) => {
          if (err instanceof BuildError && err.code === 'E_CANCELLED') throw err;
          const code = (err as { code?: string })?.code;
          throw new VerificationError(`running the plan on the CPU reference executor failed${code ? ` (${code})` : ''}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
        }),
        reference.run(inputs),
      ]);
      for (const name of outputNames) {
        const ref = refOutputs[name];
        if (!ref) throw new VerificationError(`onnxruntime did not produce output '${name}'`);
        comparisons.get(name)!.add(planOutputs[name], ref);
      }
      opts.onProgress?.(Math.round(((s + 1) / runs) * 100));
    }
  } finally {
    await reference.close();
  }

  const outputs: Record<string, OutputMetrics> = {};
  const failures: string[] = [];
  let maxAbs = 0;
  let maxRel = 0;
  let top1: number | null = null;
  for (const [name, c] of comparisons) {
    const m = c.result();
    outputs[name] = m;
    maxAbs = Math.max(maxAbs, m.maxAbs);
    maxRel = Math.max(maxRel, m.maxRel);
    if (m.top1 !== null) top1 = top1 === null ? m.top1 : Math.min(top1, m.top1);
    failures.push(...checkBounds(name, m, tolerance, precision));
  }
  return {
    passed: failures.length === 0,
    samples: runs,
    inputs: given.length ? 'calibration' : 'random',
    seed,
    precision,
    inputShapes: shapes,
    outputs,
    maxAbs,
    maxRel,
    top1,
    tolerance,
    failures,
    reference: 'onnxruntime-node (CPU)',
    durationMs: Math.round(performance.now() - started),
  };
}

/** The E_VERIFICATION message of a report that did not pass: every bound exceeded, with the numbers. */
export function verificationFailureMessage(report: VerificationReport): string {
  const top1 = report.top1 === null ? '' : `, top-1 ${num(report.top1)}`;
  const source = report.inputs === 'calibration' ? 'calibration samples' : `samples, seed ${report.seed}`;
  return (
    `plan does not match the ONNX model (${report.precision}, ${report.samples} ${source}; ` +
    `max abs ${num(report.maxAbs)}, max rel ${num(report.maxRel)}${top1}): ${report.failures.join('; ')}`
  );
}
