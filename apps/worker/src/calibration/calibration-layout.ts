/**
 * How an uploaded calibration archive (.npz) maps onto the native calibrator's data folder.
 *
 * Accepted archive layouts (one per archive, the same for every model input):
 *  - batched:    `<input>.npy` holds every sample of that input stacked on a new first axis,
 *                [N, ...]. Either the input's own shape with its batch dimension grown to N
 *                (rank equal to the input's), or N whole inputs (rank one more than the input's).
 *                Every input holds the same N.
 *  - per-sample: `<input>/<k>.npy` holds sample k of that input: a whole input, or one without
 *                its leading batch dimension when that dimension is 1 or symbolic. Every input
 *                has the same set of k; batches run in k order (numeric when every k is a number).
 * `<input>` is the graph input's name (or its file-safe form: '/', '\' and ':' as '_').
 *
 * The native calibrator (native/src/core/precision/calibrator.h) reads DIR/<batch>/<input>.npy,
 * one forward run per batch folder, in folder-name order, each file matching the input's shape
 * (symbolic dimensions free). Batched archives are cut into batches of B samples: the model's fixed
 * batch size when it has one, else the spec's profile opt batch, else 8 (the last batch may be
 * smaller when the batch dimension is symbolic). Per-sample archives give one batch per sample.
 */
import type { ValueInfo } from '../../../../libs/native/index.js';
import { CalibrationArchiveError } from './calibration-archive-error.js';
import type { NpyHeader } from './npy.js';

/** Samples per calibration batch when neither the model nor a profile fixes the batch size. */
export const DEFAULT_CALIBRATION_BATCH = 8;
/** Forward runs the calibrator will be asked to do at most. */
export const MAX_CALIBRATION_BATCHES = 10_000;

export interface CalibrationEntry {
  name: string;
  uncompressedSize: number;
  header: NpyHeader;
}

/** One input's file of one batch: `dataBytes` bytes from `dataStart` of `entry`, written with `shape`. */
export interface BatchSlice {
  entry: string;
  dataStart: number;
  dataBytes: number;
  descr: string;
  shape: number[];
}

export interface CalibrationLayout {
  layout: 'batched' | 'per-sample';
  samples: number;
  /** Per batch, per graph input. */
  batches: Record<string, BatchSlice>[];
}

/** The calibrator's file name of an input (calibrator.cc fileNameFor). */
export function calibrationFileName(input: string): string {
  return `${input.replace(/[/\\:]/g, '_')}.npy`;
}

type Dims = (number | string)[] | null;

const isFixed = (d: number | string): d is number => typeof d === 'number' && d > 0;

function fits(shape: readonly number[], model: Dims): boolean {
  if (!model) return true;
  return shape.length === model.length && model.every((d, i) => !isFixed(d) || d === shape[i]);
}

const fmt = (shape: readonly (number | string)[] | null) => (shape ? `[${shape.join(', ')}]` : '[?]');

function fail(message: string): never {
  throw new CalibrationArchiveError(message);
}

/** Input name for an entry base name: exact, else its file-safe form. */
function resolveInput(base: string, inputs: Map<string, ValueInfo>, safeNames: Map<string, string>): string | undefined {
  if (inputs.has(base)) return base;
  return safeNames.get(base);
}

/**
 * Checks archive entries (names and .npy headers) against the model's inputs and plans the
 * calibration batches. Throws CalibrationArchiveError naming the first problem.
 */
export function planCalibrationLayout(
  entries: readonly CalibrationEntry[],
  modelInputs: readonly ValueInfo[],
  profiles: Record<string, { opt: number[] }> = {},
): CalibrationLayout {
  const inputs = new Map(modelInputs.map((i) => [i.name, i]));
  const safeNames = new Map(modelInputs.map((i) => [calibrationFileName(i.name).slice(0, -4), i.name]));
  const known = modelInputs.map((i) => `'${i.name}'`).join(', ') || 'none';
  const batched = new Map<string, CalibrationEntry>();
  const perSample = new Map<string, Map<string, CalibrationEntry>>();

  for (const e of entries) {
    if (e.name.endsWith('/')) continue; // a folder entry
    if (!e.name.endsWith('.npy')) fail(`entry '${e.name}' is not a .npy file (expected <input>.npy or <input>/<k>.npy)`);
    const base = e.name.slice(0, -4);
    const whole = resolveInput(base, inputs, safeNames);
    if (whole !== undefined) {
      if (batched.has(whole)) fail(`input '${whole}' has more than one batched entry`);
      batched.set(whole, e);
      continue;
    }
    const slash = base.lastIndexOf('/');
    const input = slash > 0 ? resolveInput(base.slice(0, slash), inputs, safeNames) : undefined;
    if (input === undefined) fail(`entry '${e.name}' does not name a model input (inputs: ${known})`);
    const key = base.slice(slash + 1);
    let samples = perSample.get(input);
    if (!samples) perSample.set(input, (samples = new Map()));
    samples.set(key, e);
  }
  if (batched.size === 0 && perSample.size === 0) fail('the archive holds no .npy entries');
  if (batched.size > 0 && perSample.size > 0) {
    fail(`use one layout for every input: ${[...batched.keys()].map((i) => `'${i}.npy'`).join(', ')} are batched, ${[...perSample.keys()].map((i) => `'${i}/<k>.npy'`).join(', ')} per sample`);
  }
  const present = batched.size > 0 ? batched : perSample;
  const missing = modelInputs.filter((i) => !present.has(i.name)).map((i) => `'${i.name}'`);
  if (missing.length) fail(`no calibration data for model input${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`);

  for (const e of [...batched.values(), ...[...perSample.values()].flatMap((m) => [...m.values()])]) {
    if (e.header.dataOffset + e.header.dataBytes !== e.uncompressedSize)
      fail(`entry '${e.name}' holds ${e.uncompressedSize - e.header.dataOffset} data bytes, its .npy header announces ${e.header.dataBytes} (shape (${e.header.shape.join(', ')}))`);
  }
  const checkDtype = (input: ValueInfo, e: CalibrationEntry) => {
    if (input.dtype && input.dtype !== 'unknown' && input.dtype !== e.header.dtype)
      fail(`entry '${e.name}' holds ${e.header.dtype}, model input '${input.name}' is ${input.dtype}`);
  };

  const layout = batched.size > 0 ? planBatched(batched, modelInputs, profiles, checkDtype) : planPerSample(perSample, modelInputs, checkDtype);
  if (layout.batches.length > MAX_CALIBRATION_BATCHES)
    fail(`the archive makes ${layout.batches.length} calibration batches, more than ${MAX_CALIBRATION_BATCHES}; use fewer samples`);
  return layout;
}

function planBatched(
  files: Map<string, CalibrationEntry>,
  modelInputs: readonly ValueInfo[],
  profiles: Record<string, { opt: number[] }>,
  checkDtype: (input: ValueInfo, e: CalibrationEntry) => void,
): CalibrationLayout {
  type Plan = { input: ValueInfo; e: CalibrationEntry; withBatchDim: boolean; rowShape: number[]; rowBytes: number };
  const plans: Plan[] = [];
  let samples: number | undefined;
  for (const input of modelInputs) {
    const e = files.get(input.name)!;
    checkDtype(input, e);
    const shape = e.header.shape;
    const m = input.shape;
    if (shape.length === 0) fail(`entry '${e.name}' is a scalar; expected [N, ...] samples of input '${input.name}' ${fmt(m)}`);
    const rowShape = shape.slice(1);
    let withBatchDim: boolean;
    if (m && shape.length === m.length + 1 && fits(rowShape, m)) withBatchDim = false;
    else if ((!m || shape.length === m.length) && fits(m && isFixed(m[0]) ? [m[0], ...rowShape] : shape, m)) withBatchDim = true;
    else fail(`entry '${e.name}' has shape (${shape.join(', ')}); model input '${input.name}' is ${fmt(m)}: expected its samples stacked on the first axis`);
    if (samples !== undefined && shape[0] !== samples) fail(`entry '${e.name}' holds ${shape[0]} samples, other inputs hold ${samples}: every input needs the same number`);
    samples = shape[0];
    const rowBytes = rowShape.reduce((a, b) => a * b, 1) * e.header.itemSize;
    plans.push({ input, e, withBatchDim, rowShape, rowBytes });
  }
  const n = samples ?? 0;
  if (n === 0) fail('the calibration entries hold no samples (first dimension 0)');

  // Samples per batch: 1 when some input has no batch axis; else the model's fixed batch, else the profile's opt batch, else the default.
  let perBatch: number;
  let fixedBatch: { input: string; size: number } | undefined;
  for (const p of plans) {
    const d0 = p.input.shape?.[0];
    if (p.withBatchDim && d0 !== undefined && isFixed(d0)) {
      if (fixedBatch && fixedBatch.size !== d0) fail(`inputs '${fixedBatch.input}' and '${p.input.name}' fix different batch sizes (${fixedBatch.size}, ${d0})`);
      fixedBatch = { input: p.input.name, size: d0 };
    }
  }
  if (plans.some((p) => !p.withBatchDim)) {
    if (fixedBatch && fixedBatch.size !== 1) fail(`input '${fixedBatch.input}' has a fixed batch of ${fixedBatch.size}, other inputs are given one sample per row`);
    perBatch = 1;
  } else if (fixedBatch) {
    perBatch = fixedBatch.size;
    if (n % perBatch !== 0) fail(`${n} samples is not a multiple of input '${fixedBatch.input}''s fixed batch size ${perBatch}`);
  } else {
    const opt = plans.map((p) => profiles[p.input.name]?.opt?.[0]).find((d) => d !== undefined && d > 0);
    perBatch = Math.min(n, opt ?? DEFAULT_CALIBRATION_BATCH);
  }

  const batches: Record<string, BatchSlice>[] = [];
  for (let first = 0; first < n; first += perBatch) {
    const rows = Math.min(perBatch, n - first);
    const batch: Record<string, BatchSlice> = {};
    for (const p of plans) {
      batch[p.input.name] = {
        entry: p.e.name,
        dataStart: p.e.header.dataOffset + first * p.rowBytes,
        dataBytes: rows * p.rowBytes,
        descr: p.e.header.descr,
        shape: p.withBatchDim ? [rows, ...p.rowShape] : [...p.rowShape],
      };
    }
    batches.push(batch);
  }
  return { layout: 'batched', samples: n, batches };
}

function planPerSample(
  files: Map<string, Map<string, CalibrationEntry>>,
  modelInputs: readonly ValueInfo[],
  checkDtype: (input: ValueInfo, e: CalibrationEntry) => void,
): CalibrationLayout {
  const first = modelInputs[0];
  const keys = [...files.get(first.name)!.keys()];
  const numeric = keys.every((k) => /^\d+$/.test(k));
  keys.sort(numeric ? (a, b) => Number(a) - Number(b) || a.localeCompare(b) : undefined);
  for (const input of modelInputs) {
    const mine = files.get(input.name)!;
    const extra = [...mine.keys()].filter((k) => !files.get(first.name)!.has(k));
    const lacking = keys.filter((k) => !mine.has(k));
    if (extra.length || lacking.length) {
      const which = lacking.length ? `lacks sample '${lacking[0]}'` : `has a sample '${extra[0]}'`;
      fail(`input '${input.name}' ${which} that input '${first.name}' ${lacking.length ? 'has' : 'lacks'}: every input needs the same samples`);
    }
  }
  const batches = keys.map((k) => {
    const batch: Record<string, BatchSlice> = {};
    for (const input of modelInputs) {
      const e = files.get(input.name)!.get(k)!;
      checkDtype(input, e);
      const m = input.shape;
      let shape = e.header.shape;
      if (!fits(shape, m)) {
        const d0 = m?.[0];
        if (m && shape.length === m.length - 1 && (d0 === 1 || !isFixed(d0!)) && fits([1, ...shape], m)) shape = [1, ...shape];
        else fail(`entry '${e.name}' has shape (${shape.join(', ')}); model input '${input.name}' is ${fmt(m)}`);
      }
      batch[input.name] = { entry: e.name, dataStart: e.header.dataOffset, dataBytes: e.header.dataBytes, descr: e.header.descr, shape: [...shape] };
    }
    return batch;
  });
  return { layout: 'per-sample', samples: keys.length, batches };
}
