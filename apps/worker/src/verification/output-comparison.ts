import type { TensorValue } from '../../../../libs/native/index.js';
import { bfloat16ToFloat, halfToFloat } from './float16.js';
import { REL_ERROR_FLOOR } from './tolerances.js';
import { VerificationError } from './verification-error.js';

/** Errors of one output over every verification sample. */
export interface OutputMetrics {
  /** max |plan - reference| over finite pairs. */
  maxAbs: number;
  /** maxAbs / max(1, max |reference|): what the maxAbs tolerance bounds. */
  scaledMaxAbs: number;
  /** max |plan - reference| / |reference| over elements >= REL_ERROR_FLOOR x the sample's max |reference|. */
  maxRel: number;
  /** Fraction of rows (vectors along the last axis) whose argmax agrees; null when the last dim is 1 or absent. */
  top1: number | null;
  /** max |reference|. */
  scale: number;
  elements: number;
  /** Elements where one side is NaN/Inf and the other is not the same value. */
  nonFiniteMismatches: number;
  /** Of those, the elements where the plan is NaN/Inf and the reference is finite (overflow in the plan). */
  planOnlyNonFinite: number;
}

function toNumbers(t: TensorValue, what: string): ArrayLike<number> {
  const d = t.data;
  if (t.dtype === 'float16' || t.dtype === 'bfloat16') {
    const bits = d as Uint16Array;
    const out = new Float64Array(bits.length);
    for (let i = 0; i < bits.length; i++) out[i] = t.dtype === 'float16' ? halfToFloat(bits[i]) : bfloat16ToFloat(bits[i]);
    return out;
  }
  if (d instanceof BigInt64Array || d instanceof BigUint64Array) return Float64Array.from(d, (v) => Number(v));
  if (d instanceof DataView || !('length' in d)) throw new VerificationError(`${what}: unexpected output data`);
  return d as unknown as ArrayLike<number>;
}

/** Accumulates one output's errors sample by sample. */
export class OutputComparison {
  private maxAbs = 0;
  private maxRel = 0;
  private scale = 0;
  private elements = 0;
  private rows = 0;
  private agreeingRows = 0;
  private lastDim: number | null = null;
  private nonFinite = 0;
  private planOnlyNonFinite = 0;

  constructor(readonly name: string) {}

  add(plan: TensorValue | undefined, reference: TensorValue): void {
    if (!plan) throw new VerificationError(`the plan did not produce output '${this.name}'`);
    if (plan.shape.length !== reference.shape.length || plan.shape.some((d, i) => d !== reference.shape[i])) {
      throw new VerificationError(`output '${this.name}' has shape [${plan.shape.join(', ')}] from the plan, [${reference.shape.join(', ')}] from the ONNX model`);
    }
    const a = toNumbers(plan, `plan output '${this.name}'`);
    const b = toNumbers(reference, `reference output '${this.name}'`);
    if (a.length !== b.length) throw new VerificationError(`output '${this.name}': ${a.length} elements from the plan, ${b.length} from the ONNX model`);

    let runScale = 0;
    for (let i = 0; i < b.length; i++) if (Number.isFinite(b[i])) runScale = Math.max(runScale, Math.abs(b[i]));
    const floor = Math.max(1e-6, REL_ERROR_FLOOR * runScale);
    for (let i = 0; i < a.length; i++) {
      const x = a[i], y = b[i];
      if (!Number.isFinite(x) || !Number.isFinite(y)) {
        if (!(Object.is(x, y) || (Number.isNaN(x) && Number.isNaN(y)))) {
          this.nonFinite++;
          if (Number.isFinite(y)) this.planOnlyNonFinite++;
        }
        continue;
      }
      const err = Math.abs(x - y);
      if (err > this.maxAbs) this.maxAbs = err;
      const ay = Math.abs(y);
      if (ay >= floor) {
        const rel = err / Math.max(ay, 1e-6);
        if (rel > this.maxRel) this.maxRel = rel;
      }
    }
    this.scale = Math.max(this.scale, runScale);
    this.elements += a.length;

    const last = reference.shape.length ? reference.shape[reference.shape.length - 1] : 1;
    this.lastDim = last;
    if (last > 1) {
      for (let r = 0; r + last <= a.length; r += last) {
        this.rows++;
        if (argmax(a, r, last) === argmax(b, r, last)) this.agreeingRows++;
      }
    }
  }

  result(): OutputMetrics {
    return {
      maxAbs: this.maxAbs,
      scaledMaxAbs: this.maxAbs / Math.max(1, this.scale),
      maxRel: this.maxRel,
      top1: this.lastDim !== null && this.lastDim > 1 && this.rows > 0 ? this.agreeingRows / this.rows : null,
      scale: this.scale,
      elements: this.elements,
      nonFiniteMismatches: this.nonFinite,
      planOnlyNonFinite: this.planOnlyNonFinite,
    };
  }
}

/** First index of the largest value (NaN never wins). */
function argmax(v: ArrayLike<number>, start: number, n: number): number {
  let best = 0;
  let bestValue = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n; i++) {
    const x = v[start + i];
    if (x > bestValue) {
      bestValue = x;
      best = i;
    }
  }
  return best;
}
