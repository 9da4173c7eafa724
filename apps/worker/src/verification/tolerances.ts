import type { Precision } from '../../../../libs/contracts/index.js';

/**
 * What a plan must meet against the ONNX reference (onnxruntime, CPU) on the verification inputs.
 * A null bound is not checked.
 *  - maxAbs:  max |plan - reference| over an output, divided by the output's scale
 *             max(1, max |reference|): an absolute error for outputs of magnitude <= 1, a
 *             relative one for larger outputs (logits in the hundreds, unnormalized features).
 *  - maxRel:  max |plan - reference| / |reference| over elements whose |reference| is at least
 *             REL_ERROR_FLOOR x the output's max |reference| (relative error near zero means
 *             nothing). Off by default: a single tiny element makes it noisy.
 *  - minTop1: fraction of rows (vectors along the last axis, over every sample) whose argmax
 *             agrees; only for outputs whose last dimension is > 1.
 */
export interface VerificationTolerance {
  maxAbs: number | null;
  maxRel: number | null;
  minTop1: number | null;
}

/** Elements below this fraction of an output's largest |reference| do not count for maxRel. */
export const REL_ERROR_FLOOR = 1e-3;

/**
 * Defaults per precision, the one place they live:
 *  - fp32: same math up to summation order and fusions: 1e-3 of the output's scale;
 *  - fp16: 11-bit mantissas (~5e-4 per rounding) accumulated over layers: 1e-2;
 *    (top-1 is recorded for both but not a bound: within these errors a flip is a near-tie, not a bug)
 *  - int8: 8-bit activations and weights move values by a few percent; what matters is the
 *          decision: top-1 agreement >= 0.9, and 0.25 of the output's scale as a sanity bound.
 */
export const DEFAULT_TOLERANCES: Readonly<Record<Precision, Readonly<VerificationTolerance>>> = {
  fp32: { maxAbs: 1e-3, maxRel: null, minTop1: null },
  fp16: { maxAbs: 1e-2, maxRel: null, minTop1: null },
  int8: { maxAbs: 0.25, maxRel: null, minTop1: 0.9 },
};

/** Verification runs (samples) by default, and at most (each one is a CPU run of the plan and of the model). */
export const DEFAULT_VERIFICATION_SAMPLES = 4;
export const MAX_VERIFICATION_SAMPLES = 64;
/** Seed of the random inputs when the spec gives none: verification is deterministic. */
export const DEFAULT_VERIFICATION_SEED = 1;

const LOOSENESS: Record<Precision, number> = { fp32: 0, fp16: 1, int8: 2 };

/** The loosest precision any layer of the plan runs at decides the default tolerance. */
export function effectivePrecision(precision: Precision, layerPrecisions: Record<string, string> = {}): Precision {
  let worst = precision;
  for (const p of Object.values(layerPrecisions)) if (p in LOOSENESS && LOOSENESS[p as Precision] > LOOSENESS[worst]) worst = p as Precision;
  return worst;
}

/** Defaults for the precision, each bound the spec gives replacing its default. */
export function resolveTolerance(precision: Precision, override: Partial<Record<keyof VerificationTolerance, number>> = {}): VerificationTolerance {
  const base = DEFAULT_TOLERANCES[precision];
  return {
    maxAbs: override.maxAbs ?? base.maxAbs,
    maxRel: override.maxRel ?? base.maxRel,
    minTop1: override.minTop1 ?? base.minTop1,
  };
}
