/**
 * The pieces of verification and calibration without the farm: .npy headers, the calibration
 * archive layouts (and their refusals), the zip reader's name checks, tolerances, output
 * comparison, and verifyPlan on real plans of a tiny CNN (FP32 passes, FP16 against a zero
 * tolerance fails with the numbers).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildPlan, checkModel, type ModelInfo, type ValueInfo } from '../../libs/native/index.js';
import {
  CalibrationArchiveError,
  checkCalibrationTable,
  extractCalibrationArchive,
  inspectCalibrationArchive,
  npyHeaderBytes,
  parseNpyHeader,
  planCalibrationLayout,
  unsafeEntryName,
  type CalibrationEntry,
} from '../../apps/worker/src/calibration/index.js';
import {
  DEFAULT_TOLERANCES,
  OutputComparison,
  SeededRandom,
  VerificationError,
  effectivePrecision,
  randomInputs,
  resolveTolerance,
  verificationFailureMessage,
  verificationInputShapes,
  verifyPlan,
} from '../../apps/worker/src/verification/index.js';
import { makeModel, tinyConvNet } from '../helpers/onnx-builder.js';
import { npy, uniform, zip } from './npz-kit.js';

const IMAGE: ValueInfo = { name: 'input', dtype: 'float32', shape: ['batch', 3, 8, 8] };

function entry(name: string, shape: number[], descr = '<f4'): CalibrationEntry {
  const header = parseNpyHeader(npyHeaderBytes(descr, shape));
  return { name, uncompressedSize: header.dataOffset + header.dataBytes, header };
}

let dir: string;
let modelPath: string;
let info: ModelInfo;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'planforge-verif-'));
  modelPath = join(dir, 'tiny.onnx');
  writeFileSync(modelPath, tinyConvNet());
  info = await checkModel(modelPath);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('npy headers', () => {
  it('round-trips descr and shape, 64-byte aligned', () => {
    const bytes = npyHeaderBytes('<f4', [2, 3, 8, 8]);
    expect(bytes.length % 64).toBe(0);
    expect(parseNpyHeader(bytes)).toMatchObject({ descr: '<f4', dtype: 'float32', shape: [2, 3, 8, 8], dataOffset: bytes.length, dataBytes: 2 * 192 * 4 });
    expect(parseNpyHeader(npyHeaderBytes('<i8', [5])).shape).toEqual([5]);
    expect(parseNpyHeader(npy([4], new Float32Array(4))).dtype).toBe('float32');
  });

  it('refuses what the native reader refuses', () => {
    expect(() => parseNpyHeader(Buffer.from('PK\x03\x04 not npy'))).toThrow(/magic/);
    const big = npyHeaderBytes('<f4', [2]).toString('latin1').replace("'<f4'", "'>f4'");
    expect(() => parseNpyHeader(Buffer.from(big, 'latin1'))).toThrow(/unsupported dtype '>f4'/);
    const fortran = npyHeaderBytes('<f4', [2]).toString('latin1').replace('False', 'True ');
    expect(() => parseNpyHeader(Buffer.from(fortran, 'latin1'))).toThrow(/Fortran/);
  });
});

describe('calibration archive layout', () => {
  it('cuts a batched entry into batches of 8 samples for a symbolic batch axis', () => {
    const layout = planCalibrationLayout([entry('input.npy', [20, 3, 8, 8])], [IMAGE]);
    expect(layout.layout).toBe('batched');
    expect(layout.samples).toBe(20);
    expect(layout.batches.map((b) => b.input.shape[0])).toEqual([8, 8, 4]);
    expect(layout.batches[1].input.dataStart - layout.batches[0].input.dataStart).toBe(8 * 192 * 4);
  });

  it('uses the profile opt batch, or the model fixed batch', () => {
    expect(planCalibrationLayout([entry('input.npy', [12, 3, 8, 8])], [IMAGE], { input: { opt: [4, 3, 8, 8] } }).batches).toHaveLength(3);
    const fixed: ValueInfo = { ...IMAGE, shape: [2, 3, 8, 8] };
    expect(planCalibrationLayout([entry('input.npy', [6, 3, 8, 8])], [fixed]).batches.map((b) => b.input.shape)).toEqual([
      [2, 3, 8, 8],
      [2, 3, 8, 8],
      [2, 3, 8, 8],
    ]);
    expect(() => planCalibrationLayout([entry('input.npy', [5, 3, 8, 8])], [fixed])).toThrow(/not a multiple of .*fixed batch size 2/);
  });

  it('takes N whole inputs stacked on a new axis, one batch each', () => {
    const fixed: ValueInfo = { ...IMAGE, shape: [1, 3, 8, 8] };
    const layout = planCalibrationLayout([entry('input.npy', [3, 1, 3, 8, 8])], [fixed]);
    expect(layout.batches.map((b) => b.input.shape)).toEqual([
      [1, 3, 8, 8],
      [1, 3, 8, 8],
      [1, 3, 8, 8],
    ]);
  });

  it('orders per-sample entries numerically and adds a missing batch axis', () => {
    const layout = planCalibrationLayout([entry('input/10.npy', [3, 8, 8]), entry('input/2.npy', [1, 3, 8, 8])], [IMAGE]);
    expect(layout.layout).toBe('per-sample');
    expect(layout.batches.map((b) => [b.input.entry, b.input.shape])).toEqual([
      ['input/2.npy', [1, 3, 8, 8]],
      ['input/10.npy', [1, 3, 8, 8]],
    ]);
  });

  it('refuses entries that do not fit the model, naming the problem', () => {
    const two: ValueInfo[] = [IMAGE, { name: 'mask', dtype: 'int64', shape: ['batch', 4] }];
    const refuse = (entries: CalibrationEntry[], inputs: ValueInfo[], message: RegExp) => {
      let err: unknown;
      try {
        planCalibrationLayout(entries, inputs);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(CalibrationArchiveError);
      expect((err as Error).message).toMatch(message);
    };
    refuse([entry('pixels.npy', [4, 3, 8, 8])], [IMAGE], /entry 'pixels.npy' does not name a model input \(inputs: 'input'\)/);
    refuse([entry('input.txt', [4])], [IMAGE], /not a .npy file/);
    refuse([entry('input.npy', [4, 3, 9, 9])], [IMAGE], /shape \(4, 3, 9, 9\); model input 'input' is \[batch, 3, 8, 8\]/);
    refuse([entry('input.npy', [4, 3, 8, 8], '<f8')], [IMAGE], /holds float64, model input 'input' is float32/);
    refuse([entry('input.npy', [4, 3, 8, 8])], two, /no calibration data for model input 'mask'/);
    refuse([entry('input.npy', [4, 3, 8, 8]), entry('mask.npy', [5, 4], '<i8')], two, /holds 5 samples, other inputs hold 4/);
    refuse([entry('input.npy', [4, 3, 8, 8]), entry('mask/0.npy', [1, 4], '<i8')], two, /one layout for every input/);
    refuse([entry('input/0.npy', [1, 3, 8, 8]), entry('input/1.npy', [1, 3, 8, 8]), entry('mask/0.npy', [1, 4], '<i8')], two, /input 'mask' lacks sample '1'/);
    refuse([], [IMAGE], /no .npy entries/);
    const truncated = { ...entry('input.npy', [4, 3, 8, 8]), uncompressedSize: 1000 };
    refuse([truncated], [IMAGE], /holds \d+ data bytes, its .npy header announces 3072/);
  });
});

describe('zip entries', () => {
  it('flags names that would leave the extraction folder', () => {
    expect(unsafeEntryName('input.npy')).toBeNull();
    expect(unsafeEntryName('input/0.npy')).toBeNull();
    expect(unsafeEntryName('../input.npy')).toMatch(/path traversal/);
    expect(unsafeEntryName('input/../../etc/x.npy')).toMatch(/path traversal/);
    expect(unsafeEntryName('/etc/passwd')).toMatch(/absolute/);
    expect(unsafeEntryName('C:/x.npy')).toMatch(/drive/);
    expect(unsafeEntryName('a\\b.npy')).toMatch(/backslash/);
  });

  it('refuses an archive that is not a zip, and one with a traversal entry, before extracting anything', async () => {
    const notZip = join(dir, 'not.npz');
    writeFileSync(notZip, 'definitely not a zip archive');
    await expect(inspectCalibrationArchive(notZip, info.inputs)).rejects.toThrow(/not a zip archive/);
    const evil = join(dir, 'evil.npz');
    writeFileSync(evil, zip([{ name: '../input.npy', data: npy([1, 3, 8, 8], uniform(192, 1)) }]));
    const out = join(dir, 'evil-out');
    await expect(extractCalibrationArchive(evil, out, info.inputs)).rejects.toThrow(/'\.\.' segment \(path traversal\)/);
    expect(readdirSync(dir)).not.toContain('input.npy');
  });

  it('extracts a deflated batched archive into the calibrator layout with exact bytes', async () => {
    const data = uniform(10 * 192, 3);
    const archive = join(dir, 'ok.npz');
    writeFileSync(archive, zip([{ name: 'input.npy', data: npy([10, 3, 8, 8], data) }], true));
    const out = join(dir, 'ok-out');
    const got = await extractCalibrationArchive(archive, out, info.inputs);
    expect(got).toMatchObject({ batches: 2, samples: 10, layout: 'batched' });
    expect(readdirSync(got.dataDir)).toEqual(['b000000', 'b000001']);
    const second = readFileSync(join(got.dataDir, 'b000001', 'input.npy'));
    const header = parseNpyHeader(second);
    expect(header.shape).toEqual([2, 3, 8, 8]);
    const values = new Float32Array(second.buffer.slice(second.byteOffset + header.dataOffset, second.byteOffset + second.length));
    expect(Array.from(values)).toEqual(Array.from(data.subarray(8 * 192)));
    expect(readdirSync(out)).toEqual(['data']); // the raw entries are gone
  });

  it('reads archives written by NumPy (data descriptors, zip64 extras, deflate)', async () => {
    const fixtures = join(process.cwd(), 'test', 'verification', 'fixtures');
    const streamed = await extractCalibrationArchive(join(fixtures, 'numpy-batched-streamed.npz'), join(dir, 'np-streamed'), info.inputs);
    expect(streamed).toMatchObject({ layout: 'batched', samples: 2, batches: 1 });
    const perSample = await extractCalibrationArchive(join(fixtures, 'numpy-per-sample-compressed.npz'), join(dir, 'np-samples'), info.inputs);
    expect(perSample).toMatchObject({ layout: 'per-sample', samples: 3, batches: 3 });
    const first = parseNpyHeader(readFileSync(join(perSample.dataDir, 'b000000', 'input.npy')));
    expect(first.shape).toEqual([1, 3, 8, 8]);
  });

  it('checks calibration tables', async () => {
    const table = join(dir, 'table.json');
    writeFileSync(table, JSON.stringify({ format: 'planforge-calibration', version: 1, method: 'minmax', tensors: { input: { amax: 1, scale: 1 / 127 } } }));
    await expect(checkCalibrationTable(table)).resolves.toEqual({ method: 'minmax', tensors: 1 });
    writeFileSync(table, JSON.stringify({ format: 'tensorrt', version: 1 }));
    await expect(checkCalibrationTable(table)).rejects.toMatchObject({ field: 'calibrationTable', message: expect.stringMatching(/"format"/) });
  });
});

describe('tolerances and comparison', () => {
  it('takes the loosest precision of the plan and its layers; spec bounds replace defaults', () => {
    expect(effectivePrecision('fp32', { conv: 'fp16' })).toBe('fp16');
    expect(effectivePrecision('fp16', { conv: 'int8', fc: 'fp32' })).toBe('int8');
    expect(resolveTolerance('fp16', { maxAbs: 0 })).toEqual({ ...DEFAULT_TOLERANCES.fp16, maxAbs: 0 });
    expect(DEFAULT_TOLERANCES.int8.minTop1).toBe(0.9);
  });

  it('measures abs, guarded rel and top-1 errors', () => {
    const c = new OutputComparison('logits');
    const t = (v: number[]) => ({ dtype: 'float32', shape: [2, 3], data: Float32Array.from(v) });
    c.add(t([1, 2, 3, 0, 5, 1e-9]), t([1, 2, 3.5, 0, 4, 2e-9]));
    const m = c.result();
    expect(m.maxAbs).toBeCloseTo(1, 6);
    expect(m.scale).toBe(4);
    expect(m.scaledMaxAbs).toBeCloseTo(0.25, 6);
    expect(m.maxRel).toBeCloseTo(0.25, 6); // 1/4; the 1e-9 element is under the floor
    expect(m.top1).toBe(1);
    c.add(t([0, 9, 0, 0, 0, 0]), t([9, 0, 0, 0, 0, 0]));
    expect(c.result().top1).toBe(0.75);
    const scalar = new OutputComparison('score');
    scalar.add({ dtype: 'float32', shape: [2, 1], data: Float32Array.from([1, Number.NaN]) }, { dtype: 'float32', shape: [2, 1], data: Float32Array.from([1, 0]) });
    expect(scalar.result()).toMatchObject({ top1: null, nonFiniteMismatches: 1 });
    expect(() => scalar.add({ dtype: 'float32', shape: [1, 1], data: new Float32Array(1) }, { dtype: 'float32', shape: [2, 1], data: new Float32Array(2) })).toThrow(VerificationError);
  });

  it('makes seeded inputs of the profile opt shape, 1 for free symbolic dims', () => {
    expect(verificationInputShapes([IMAGE])).toEqual({ input: [1, 3, 8, 8] });
    expect(verificationInputShapes([IMAGE], { input: { min: [1, 3, 8, 8], opt: [4, 3, 8, 8], max: [8, 3, 8, 8] } })).toEqual({ input: [4, 3, 8, 8] });
    const a = randomInputs([IMAGE], { input: [1, 3, 8, 8] }, new SeededRandom(5));
    const b = randomInputs([IMAGE], { input: [1, 3, 8, 8] }, new SeededRandom(5));
    expect(Array.from(a.input.data as Float32Array)).toEqual(Array.from(b.input.data as Float32Array));
    const ids = randomInputs([{ name: 'ids', dtype: 'int64', shape: [6] }], { ids: [6] }, new SeededRandom(1)).ids.data as BigInt64Array;
    expect(Array.from(ids).every((v) => v >= 0n && v < 4n)).toBe(true);
  });
});

describe('verifyPlan against onnxruntime', () => {
  it('passes an FP32 plan with tiny errors and full top-1 agreement', async () => {
    const plan = join(dir, 'fp32.plan');
    await buildPlan({ modelPath, outputPath: plan, target: 'sm_80', precision: 'fp32' });
    const progress: number[] = [];
    const report = await verifyPlan({ planPath: plan, modelPath, modelInputs: info.inputs, precision: 'fp32', onProgress: (p) => progress.push(p) });
    expect(report).toMatchObject({ passed: true, samples: 4, seed: 1, precision: 'fp32', failures: [], top1: 1, tolerance: DEFAULT_TOLERANCES.fp32 });
    expect(report.maxAbs).toBeLessThan(1e-5);
    expect(report.outputs.output).toMatchObject({ top1: 1, elements: 40 });
    expect(progress).toEqual([25, 50, 75, 100]);
  });

  it('fails an FP16 plan held to a zero tolerance, with the numbers in the message', async () => {
    const plan = join(dir, 'fp16.plan');
    await buildPlan({ modelPath, outputPath: plan, target: 'sm_80', precision: 'fp16' });
    const report = await verifyPlan({ planPath: plan, modelPath, modelInputs: info.inputs, precision: 'fp16', settings: { samples: 2, seed: 9, tolerance: { maxAbs: 0 } } });
    expect(report.passed).toBe(false);
    expect(report.maxAbs).toBeGreaterThan(0);
    expect(report.maxAbs).toBeLessThan(1e-2);
    const message = verificationFailureMessage(report);
    expect(message).toMatch(/fp16, 2 samples, seed 9/);
    expect(message).toMatch(/output 'output': max abs error [0-9.e-]+ .* exceeds 0/);
  });

  it('says when an FP16 plan overflows: NaN/Inf where the FP32 model is finite, with what to do', async () => {
    // x * 1e5 * 1e-5: finite in FP32, Inf in FP16 as soon as |x| * 1e5 passes 65504.
    const scalar = (name: string, v: number) => ({ name, dtype: 'float32' as const, dims: [1], data: [v] });
    const model = makeModel({
      graphName: 'overflow',
      inputs: [{ name: 'x', dtype: 'float32', shape: [1, 16] }],
      outputs: [{ name: 'y', dtype: 'float32', shape: [1, 16] }],
      initializers: [scalar('big', 1e5), scalar('small', 1e-5)],
      nodes: [
        { op: 'Mul', name: 'scale_up', inputs: ['x', 'big'], outputs: ['h'] },
        { op: 'Mul', name: 'scale_down', inputs: ['h', 'small'], outputs: ['y'] },
      ],
    });
    const overflowModel = join(dir, 'overflow.onnx');
    writeFileSync(overflowModel, model);
    const plan = join(dir, 'overflow-fp16.plan');
    await buildPlan({ modelPath: overflowModel, outputPath: plan, target: 'sm_80', precision: 'fp16' });
    const inputs = (await checkModel(overflowModel)).inputs;
    const report = await verifyPlan({ planPath: plan, modelPath: overflowModel, modelInputs: inputs, precision: 'fp16', settings: { samples: 2 } });
    expect(report.passed).toBe(false);
    expect(report.outputs.y.planOnlyNonFinite).toBeGreaterThan(0);
    expect(verificationFailureMessage(report)).toMatch(/NaN\/Inf from the plan where the FP32 model is finite: an activation likely exceeds FP16's range of ±65504; keep the layers that overflow in fp32 with spec.layerPrecisions/);
    // Kept in fp32, the same model passes.
    const mixed = join(dir, 'overflow-mixed.plan');
    await buildPlan({ modelPath: overflowModel, outputPath: mixed, target: 'sm_80', precision: 'fp16', layerPrecisions: { scale_up: 'fp32', scale_down: 'fp32' } });
    expect((await verifyPlan({ planPath: mixed, modelPath: overflowModel, modelInputs: inputs, precision: 'fp16', settings: { samples: 2 } })).passed).toBe(true);
  });

  it('rejects with VerificationError when onnxruntime cannot load the model', async () => {
    const plan = join(dir, 'fp32.plan');
    const broken = join(dir, 'broken.onnx');
    writeFileSync(broken, 'not onnx');
    await expect(verifyPlan({ planPath: plan, modelPath: broken, modelInputs: info.inputs, precision: 'fp32' })).rejects.toBeInstanceOf(VerificationError);
  });
});
