/**
 * FP16 and INT8 plans of a small CNN through the binding: top-1 agreement with the FP32 plan on
 * 200 inputs and the max abs error, for FP16 and for INT8 with each calibrator (entropy, minmax,
 * percentile) on generated calibration .npy batches; the calibration cache round trip; and the
 * fused FP32 plan against the unfused graph.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildPlan, inspectPlan, runPlan, type BuildPlanOptions, type TensorValue } from '../../libs/native/index.js';
import { attr, makeModel, seededFloats } from '../helpers/onnx-builder.js';

const SIZE = 16;
const CLASSES = 10;
const EVAL_COUNT = 200;
const CALIB_BATCHES = 8;
const CALIB_BATCH_SIZE = 8;

/** Uniform weights with He variance (uniform in [-s, s] has variance s^2 / 3). */
function heWeights(count: number, fanIn: number, seed: number): Float32Array {
  return seededFloats(count, seed, Math.sqrt(6 / fanIn));
}

function batchNorm(prefix: string, channels: number, seed: number) {
  const s = seededFloats(channels * 4, seed, 0.2);
  const v = (k: number, base: number, pos = false) =>
    Array.from({ length: channels }, (_, i) => base + (pos ? Math.abs(s[k * channels + i]) : s[k * channels + i]));
  return [
    { name: `${prefix}.scale`, dims: [channels], data: v(0, 1) },
    { name: `${prefix}.bias`, dims: [channels], data: v(1, 0) },
    { name: `${prefix}.mean`, dims: [channels], data: v(2, 0) },
    { name: `${prefix}.var`, dims: [channels], data: v(3, 0.8, true) },
  ];
}

/**
 * input[batch,3,16,16] -> Conv(8)+BN -> Relu -> Conv(16,stride 2)+BN -> HardSwish
 * -> Conv(16)+BN -> Add(residual) -> Relu -> GlobalAveragePool -> Flatten -> MatMul(10) -> Add(bias)
 * The optimizer folds the BNs, fuses the activations and the residual into FusedConv layers and
 * MatMul + Add into a FusedMatMul.
 */
function smallCnn(): Buffer {
  const bnAttrs = { epsilon: attr.float(1e-5) };
  return makeModel({
    opset: 13,
    graphName: 'precision_cnn',
    inputs: [{ name: 'image', dtype: 'float32', shape: ['batch', 3, SIZE, SIZE] }],
    outputs: [{ name: 'logits', dtype: 'float32', shape: ['batch', CLASSES] }],
    initializers: [
      { name: 'conv1.w', dims: [8, 3, 3, 3], data: heWeights(8 * 27, 27, 11) },
      ...batchNorm('bn1', 8, 12),
      { name: 'conv2.w', dims: [16, 8, 3, 3], data: heWeights(16 * 72, 72, 13) },
      { name: 'conv2.b', dims: [16], data: seededFloats(16, 14, 0.1) },
      ...batchNorm('bn2', 16, 15),
      { name: 'conv3.w', dims: [16, 16, 3, 3], data: heWeights(16 * 144, 144, 16) },
      ...batchNorm('bn3', 16, 17),
      { name: 'fc.w', dims: [16, CLASSES], data: heWeights(16 * CLASSES, 16, 18) },
      { name: 'fc.b', dims: [CLASSES], data: seededFloats(CLASSES, 19, 0.1) },
    ],
    nodes: [
      { op: 'Conv', name: 'conv1', inputs: ['image', 'conv1.w'], outputs: ['c1'], attrs: { pads: [1, 1, 1, 1] } },
      { op: 'BatchNormalization', name: 'bn1', inputs: ['c1', 'bn1.scale', 'bn1.bias', 'bn1.mean', 'bn1.var'], outputs: ['b1'], attrs: bnAttrs },
      { op: 'Relu', name: 'relu1', inputs: ['b1'], outputs: ['r1'] },
      { op: 'Conv', name: 'conv2', inputs: ['r1', 'conv2.w', 'conv2.b'], outputs: ['c2'], attrs: { pads: [1, 1, 1, 1], strides: [2, 2] } },
      { op: 'BatchNormalization', name: 'bn2', inputs: ['c2', 'bn2.scale', 'bn2.bias', 'bn2.mean', 'bn2.var'], outputs: ['b2'], attrs: bnAttrs },
      { op: 'HardSwish', name: 'hswish', inputs: ['b2'], outputs: ['h2'] },
      { op: 'Conv', name: 'conv3', inputs: ['h2', 'conv3.w'], outputs: ['c3'], attrs: { pads: [1, 1, 1, 1] } },
      { op: 'BatchNormalization', name: 'bn3', inputs: ['c3', 'bn3.scale', 'bn3.bias', 'bn3.mean', 'bn3.var'], outputs: ['b3'], attrs: bnAttrs },
      { op: 'Add', name: 'residual', inputs: ['b3', 'h2'], outputs: ['s3'] },
      { op: 'Relu', name: 'relu3', inputs: ['s3'], outputs: ['r3'] },
      { op: 'GlobalAveragePool', name: 'gap', inputs: ['r3'], outputs: ['g'] },
      { op: 'Flatten', name: 'flatten', inputs: ['g'], outputs: ['f'], attrs: { axis: 1 } },
      { op: 'MatMul', name: 'fc', inputs: ['f', 'fc.w'], outputs: ['m'] },
      { op: 'Add', name: 'fc_bias', inputs: ['m', 'fc.b'], outputs: ['logits'] },
    ],
  });
}

/**
 * Image-like inputs: per sample and channel a random oriented sinusoid plus noise, so that
 * activations have structure (not i.i.d. noise) and the classes are not decided by noise.
 */
function images(count: number, seed: number): Float32Array {
  const params = seededFloats(count * 3 * 4, seed, 1);
  const noise = seededFloats(count * 3 * SIZE * SIZE, seed + 1000, 0.3);
  const out = new Float32Array(count * 3 * SIZE * SIZE);
  for (let n = 0; n < count; n++)
    for (let c = 0; c < 3; c++) {
      const p = (n * 3 + c) * 4;
      const fx = params[p] * 0.8, fy = params[p + 1] * 0.8, phase = params[p + 2] * Math.PI, amp = 1 + params[p + 3] * 0.5;
      for (let y = 0; y < SIZE; y++)
        for (let x = 0; x < SIZE; x++) {
          const i = ((n * 3 + c) * SIZE + y) * SIZE + x;
          out[i] = amp * Math.sin(fx * x + fy * y + phase) + noise[i];
        }
    }
  return out;
}

/** NumPy .npy v1.0 bytes of a float32 C-order array. */
function npy(shape: number[], data: Float32Array): Buffer {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  header += ' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64) + '\n';
  const buf = Buffer.alloc(10 + header.length + data.byteLength);
  buf.write('\x93NUMPY', 0, 'latin1');
  buf[6] = 1;
  buf[7] = 0;
  buf.writeUInt16LE(header.length, 8);
  buf.write(header, 10, 'latin1');
  Buffer.from(data.buffer, data.byteOffset, data.byteLength).copy(buf, 10 + header.length);
  return buf;
}

function argmaxRows(v: Float32Array, cols: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < v.length / cols; r++) {
    let best = 0;
    for (let c = 1; c < cols; c++) if (v[r * cols + c] > v[r * cols + best]) best = c;
    out.push(best);
  }
  return out;
}

function compare(ref: Float32Array, got: Float32Array): { top1: number; maxAbs: number; meanAbs: number } {
  const a = argmaxRows(ref, CLASSES), b = argmaxRows(got, CLASSES);
  let same = 0;
  for (let i = 0; i < a.length; i++) same += a[i] === b[i] ? 1 : 0;
  let maxAbs = 0, sumAbs = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(ref[i] - got[i]);
    maxAbs = Math.max(maxAbs, d);
    sumAbs += d;
  }
  return { top1: same / a.length, maxAbs, meanAbs: sumAbs / ref.length };
}

let dir: string;
let modelPath: string;
let calibDir: string;
const evalInput: TensorValue = { dtype: 'float32', shape: [EVAL_COUNT, 3, SIZE, SIZE], data: images(EVAL_COUNT, 4242) };
const report: Record<string, { top1: number; maxAbs: number; meanAbs: number }> = {};

function options(name: string, precision: BuildPlanOptions['precision'], extra: Partial<BuildPlanOptions> = {}): BuildPlanOptions {
  return {
    modelPath,
    outputPath: join(dir, `${name}.plan`),
    target: 'sm_86',
    precision,
    profiles: { image: { min: [1, 3, SIZE, SIZE], opt: [8, 3, SIZE, SIZE], max: [EVAL_COUNT, 3, SIZE, SIZE] } },
    ...extra,
  };
}

async function logits(planPath: string): Promise<Float32Array> {
  const out = await runPlan(planPath, { image: evalInput });
  const t = out.logits;
  expect(t.dtype).toBe('float32');
  expect(t.shape).toEqual([EVAL_COUNT, CLASSES]);
  return t.data as Float32Array;
}

let fp32: Float32Array;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pf-precision-'));
  modelPath = join(dir, 'cnn.onnx');
  writeFileSync(modelPath, smallCnn());
  // Layout: one sub-folder per batch, one <input>.npy each.
  calibDir = join(dir, 'calib');
  for (let b = 0; b < CALIB_BATCHES; b++) {
    const batchDir = join(calibDir, `batch${String(b).padStart(3, '0')}`);
    mkdirSync(batchDir, { recursive: true });
    writeFileSync(join(batchDir, 'image.npy'), npy([CALIB_BATCH_SIZE, 3, SIZE, SIZE], images(CALIB_BATCH_SIZE, 7 + b)));
  }
  await buildPlan(options('fp32', 'fp32'));
  fp32 = await logits(join(dir, 'fp32.plan'));
});

afterAll(() => {
  // One line per configuration: the numbers this suite asserts floors on.
  const lines = Object.entries(report).map(([k, v]) => `${k.padEnd(18)} top-1 ${(v.top1 * 100).toFixed(1)}%  max abs ${v.maxAbs.toExponential(2)}  mean abs ${v.meanAbs.toExponential(2)}`);
  if (lines.length) console.log(`precision vs FP32 on ${EVAL_COUNT} inputs:\n${lines.join('\n')}`);
  rmSync(dir, { recursive: true, force: true });
});

describe('FP32 plan', () => {
  it('fuses BN, activations, the residual and the bias, with unchanged numerics', async () => {
    const info = await inspectPlan(join(dir, 'fp32.plan'));
    const ops = info.layers.map((l) => l.op);
    expect(ops).toEqual(['FusedConv', 'FusedConv', 'FusedConv', 'GlobalAveragePool', 'Flatten', 'FusedMatMul']);
    const conv3 = info.layers[2];
    expect(conv3.originalNodes).toEqual(['conv3', 'bn3', 'residual', 'relu3']);
    expect(info.layers[1].originalNodes).toEqual(['conv2', 'bn2', 'hswish']);
    // The same model without the fusion passes.
    await buildPlan(options('unfused', 'fp32', { passes: ['eliminate_identity', 'fold_constants'] }));
    const unfused = await logits(join(dir, 'unfused.plan'));
    const r = compare(unfused, fp32);
    expect(r.top1).toBe(1);
    expect(r.maxAbs).toBeLessThan(1e-4);
  });
});

describe('FP16 plan', () => {
  it('stores float16 weights and keeps top-1 >= 99%', async () => {
    const summary = await buildPlan(options('fp16', 'fp16'));
    expect(summary.header.precision).toBe('fp16');
    const info = await inspectPlan(join(dir, 'fp16.plan'));
    expect(info.layers.every((l) => l.precision === 'fp16')).toBe(true);
    expect(info.layers.some((l) => l.op === 'RoundToFp16')).toBe(true);
    const fp32Info = await inspectPlan(join(dir, 'fp32.plan'));
    expect(info.weightBytes).toBeLessThan(fp32Info.weightBytes * 0.6);
    const r = compare(fp32, await logits(join(dir, 'fp16.plan')));
    report.fp16 = r;
    expect(r.maxAbs).toBeGreaterThan(0); // really simulated
    expect(r.top1).toBeGreaterThanOrEqual(0.99);
  });
});

describe('INT8 plans', () => {
  it.each(['entropy', 'minmax', 'percentile'] as const)('%s calibration keeps top-1 >= 90%%', async (method) => {
    const summary = await buildPlan(
      options(`int8-${method}`, 'int8', { calibration: { dataDir: calibDir, method, ...(method === 'percentile' ? { percentile: 99.99 } : {}) } }),
    );
    const changes = summary.passes.flatMap((p) => p.changes);
    expect(changes.some((c) => c.includes(`calibration: ${method}`) && c.includes(`over ${CALIB_BATCHES} batches`))).toBe(true);
    const info = await inspectPlan(join(dir, `int8-${method}.plan`));
    expect(info.calibration.method).toBe(method);
    expect(info.calibration.tensors).toBe(4); // the inputs of the three convolutions and of the classifier
    expect(info.layers.filter((l) => l.op === 'QuantizeLinear')).toHaveLength(4);
    expect(info.layers.filter((l) => l.op === 'FusedConv').every((l) => l.precision === 'int8')).toBe(true);
    expect(info.layers.find((l) => l.op === 'GlobalAveragePool')?.precision).toBe('fp32'); // no INT8 kernel
    const r = compare(fp32, await logits(join(dir, `int8-${method}.plan`)));
    report[`int8 ${method}`] = r;
    expect(r.maxAbs).toBeGreaterThan(0);
    expect(r.top1).toBeGreaterThanOrEqual(0.9);
  });

  it('writes a calibration cache and rebuilds from it without data', async () => {
    const cacheFile = join(dir, 'calib-cache.json');
    await buildPlan(options('int8-cached-a', 'int8', { calibration: { dataDir: calibDir, method: 'entropy', cacheFile } }));
    expect(existsSync(cacheFile)).toBe(true);
    const cache = JSON.parse(readFileSync(cacheFile, 'utf8')) as { format: string; method: string; tensors: Record<string, { amax: number; scale: number }> };
    expect(cache.format).toBe('planforge-calibration');
    expect(cache.method).toBe('entropy');
    const entries = Object.values(cache.tensors);
    expect(entries).toHaveLength(4);
    for (const e of entries) expect(e.scale).toBeCloseTo(e.amax / 127, 6);

    const summary = await buildPlan(options('int8-cached-b', 'int8', { calibration: { cacheFile } }));
    expect(summary.passes.flatMap((p) => p.changes).some((c) => c.includes('read from cache'))).toBe(true);
    const a = await logits(join(dir, 'int8-cached-a.plan'));
    const b = await logits(join(dir, 'int8-cached-b.plan'));
    expect(Array.from(b)).toEqual(Array.from(a));
  });

  it('refuses INT8 without calibration data or cache', async () => {
    await expect(buildPlan(options('int8-nodata', 'int8'))).rejects.toMatchObject({ code: 'E_CALIBRATION' });
  });
});
