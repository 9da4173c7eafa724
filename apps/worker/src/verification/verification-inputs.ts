import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { tensorView, type ProfileDims, type TensorValue, type ValueInfo } from '../../../../libs/native/index.js';
import { calibrationFileName } from '../calibration/calibration-layout.js';
import { parseNpyHeader } from '../calibration/npy.js';
import { floatToHalf } from './float16.js';
import type { SeededRandom } from './seeded-random.js';
import { VerificationError } from './verification-error.js';

/**
 * Shape of each graph input for a verification run: the profile's opt shape where the spec
 * gives a profile, the model's fixed dims otherwise, 1 for a symbolic dim without a profile.
 */
export function verificationInputShapes(inputs: readonly ValueInfo[], profiles: Record<string, ProfileDims> = {}): Record<string, number[]> {
  const shapes: Record<string, number[]> = {};
  for (const input of inputs) {
    const profile = profiles[input.name];
    if (profile) {
      shapes[input.name] = [...profile.opt];
      continue;
    }
    if (input.shape === null) {
      throw new VerificationError(`cannot make verification inputs: input '${input.name}' has an unknown rank and the spec gives no profile for it`);
    }
    shapes[input.name] = input.shape.map((d) => (typeof d === 'number' && d > 0 ? d : 1));
  }
  return shapes;
}

/**
 * Integer inputs are mostly indices, token ids or masks: small non-negative values are valid
 * for nearly every model (an embedding of any size accepts 0..3).
 */
const INT_RANGE: [number, number] = [0, 4];

/**
 * Seeded random tensors: floats uniform in [-1, 1) (float16 as raw bits, as runPlan and
 * onnxruntime take them), integers in [0, 4), booleans 0/1.
 */
export function randomInputs(inputs: readonly ValueInfo[], shapes: Record<string, number[]>, rng: SeededRandom): Record<string, TensorValue> {
  const out: Record<string, TensorValue> = {};
  for (const input of inputs) {
    const shape = shapes[input.name];
    const n = shape.reduce((a, b) => a * b, 1);
    let data: ArrayBufferView;
    switch (input.dtype) {
      case 'float32':
        data = Float32Array.from({ length: n }, () => rng.uniform(-1, 1));
        break;
      case 'float64':
        data = Float64Array.from({ length: n }, () => rng.uniform(-1, 1));
        break;
      case 'float16':
        data = Uint16Array.from({ length: n }, () => floatToHalf(rng.uniform(-1, 1)));
        break;
      case 'int64':
        data = BigInt64Array.from({ length: n }, () => BigInt(rng.int(...INT_RANGE)));
        break;
      case 'uint64':
        data = BigUint64Array.from({ length: n }, () => BigInt(rng.int(...INT_RANGE)));
        break;
      case 'int32':
        data = Int32Array.from({ length: n }, () => rng.int(...INT_RANGE));
        break;
      case 'uint32':
        data = Uint32Array.from({ length: n }, () => rng.int(...INT_RANGE));
        break;
      case 'int16':
        data = Int16Array.from({ length: n }, () => rng.int(...INT_RANGE));
        break;
      case 'uint16':
        data = Uint16Array.from({ length: n }, () => rng.int(...INT_RANGE));
        break;
      case 'int8':
        data = Int8Array.from({ length: n }, () => rng.int(...INT_RANGE));
        break;
      case 'uint8':
        data = Uint8Array.from({ length: n }, () => rng.int(...INT_RANGE));
        break;
      case 'bool':
        data = Uint8Array.from({ length: n }, () => rng.int(0, 2));
        break;
      default:
        throw new VerificationError(`cannot make verification inputs: input '${input.name}' has type ${input.dtype}`);
    }
    out[input.name] = { dtype: input.dtype, shape: [...shape], data };
  }
  return out;
}

/**
 * Up to `count` samples from a calibration data folder (DIR/<batch>/<input>.npy, the layout
 * calibration-archive.ts writes): real data where the plan was calibrated, which is what INT8
 * must be judged on. Batches whose shapes differ from the first (a short last batch) are skipped:
 * they could fall outside the plan's profiles. Empty when the folder has none.
 */
export async function loadSampleInputs(dataDir: string, inputs: readonly ValueInfo[], count: number): Promise<Record<string, TensorValue>[]> {
  const batches = (await readdir(dataDir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  const out: Record<string, TensorValue>[] = [];
  let firstShapes: string | undefined;
  for (const batch of batches) {
    if (out.length >= count) break;
    const sample: Record<string, TensorValue> = {};
    for (const input of inputs) {
      const bytes = await readFile(path.join(dataDir, batch, calibrationFileName(input.name)));
      const header = parseNpyHeader(bytes);
      // A copy: typed arrays need their own aligned buffer. bfloat16 is refused as runPlan refuses it.
      const data =
        header.dtype === 'bfloat16'
          ? undefined
          : tensorView(header.dtype, bytes.buffer.slice(bytes.byteOffset + header.dataOffset, bytes.byteOffset + header.dataOffset + header.dataBytes));
      if (!data) throw new VerificationError(`calibration sample ${batch}/${input.name}: unsupported dtype ${header.dtype}`);
      sample[input.name] = { dtype: header.dtype, shape: header.shape, data };
    }
    const shapes = JSON.stringify(inputs.map((i) => sample[i.name].shape));
    firstShapes ??= shapes;
    if (shapes === firstShapes) out.push(sample);
  }
  return out;
}
