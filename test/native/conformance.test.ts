/**
 * ONNX conformance of the native CPU reference kernels, through native/build/planforge-conformance:
 *  1. the ONNX backend test data in ../shared/onnx-conformance (PyTorch-exported op cases with test
 *     data + the light CNNs): every case must pass and none may be unsupported;
 *  2. op cases generated here (opsets 6-21, the attribute/input variants the data does not cover)
 *     whose expected outputs come from onnxruntime-node, the numerical oracle.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { attr, floatToHalf, makeModel, makeTensorProto, seededFloats, type DType, type NodeSpec, type TensorSpec } from '../helpers/onnx-builder.js';
import { onnxruntimeOutputs } from '../helpers/onnxruntime.js';

/** dist/test/native → repository root. */
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const NATIVE_DIR = join(REPO_ROOT, 'native');
const DATA_DIR = resolve(REPO_ROOT, '..', 'shared', 'onnx-conformance');
/** PLANFORGE_CONFORMANCE_BIN: use a prebuilt runner instead of building native/build/planforge-conformance. */
const PREBUILT = process.env.PLANFORGE_CONFORMANCE_BIN;
const BINARY = PREBUILT ?? join(NATIVE_DIR, 'build', 'planforge-conformance');

interface CaseResult {
  suite: string;
  name: string;
  status: 'PASS' | 'FAIL' | 'UNSUPPORTED';
  detail: string;
  seconds: number;
}

interface Report {
  cases: number;
  passed: number;
  failed: number;
  unsupported: number;
  results: CaseResult[];
}

/** Builds the runner (incrementally); the fragment is passed explicitly unless the Makefile includes it. */
function buildRunner(): void {
  if (PREBUILT) return;
  const makefile = readFileSync(join(NATIVE_DIR, 'Makefile'), 'utf8');
  const args = makefile.includes('conformance.mk')
    ? ['-j2', 'build/planforge-conformance']
    : ['-j2', '-f', 'Makefile', '-f', 'test/conformance/conformance.mk', 'build/planforge-conformance'];
  const r = spawnSync('make', args, { cwd: NATIVE_DIR, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`make ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
}

const haveData = existsSync(join(DATA_DIR, 'pytorch-converted'));
if (!haveData) {
  console.warn(`conformance: skipped, no ONNX conformance data at ${DATA_DIR}`);
}
const describeIfData = haveData ? describe : describe.skip;

/** Runs the conformance binary and returns its JSON report (exit 1 = some case failed: the tests say which). */
function runConformance(workDir: string, tag: string, args: string[]): Report {
  const jsonPath = join(workDir, `${tag}.json`);
  const r = spawnSync(BINARY, ['--json', jsonPath, ...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, timeout: 540_000 });
  if (r.error) throw r.error;
  if (r.status !== 0 && r.status !== 1) throw new Error(`planforge-conformance exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
  console.log(`${tag}: ${r.stdout.split('\n').find((l) => l.startsWith('conformance:')) ?? ''}`);
  return JSON.parse(readFileSync(jsonPath, 'utf8')) as Report;
}

describeIfData('native CPU reference kernels vs ONNX conformance data', () => {
  let report: Report;
  let symbolic: Report;
  let workDir = '';

  beforeAll(() => {
    buildRunner();
    workDir = mkdtempSync(join(tmpdir(), 'pf-conformance-'));
    report = runConformance(workDir, 'onnx-backend-data', [DATA_DIR]);
    symbolic = runConformance(workDir, 'onnx-backend-data-symbolic-inputs', ['--symbolic-inputs', DATA_DIR]);
  }, 600_000);

  afterAll(() => {
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });

  test('covers all three suites', () => {
    const suites = new Set(report.results.map((r) => r.suite));
    expect([...suites].sort()).toEqual(['light', 'pytorch-converted', 'pytorch-operator']);
    expect(report.cases).toBe(report.results.length);
    expect(report.cases).toBeGreaterThan(100);
  });

  test('every supported case matches the expected outputs', () => {
    const failures = report.results.filter((r) => r.status === 'FAIL').map((r) => `${r.suite}/${r.name}: ${r.detail}`);
    expect(failures).toEqual([]);
  });

  test('shape inference copes with fully symbolic input dims', () => {
    const failures = symbolic.results.filter((r) => r.status !== 'PASS').map((r) => `${r.suite}/${r.name}: ${r.detail}`);
    expect(failures).toEqual([]);
  });

  test('no case uses an unsupported op', () => {
    const unsupported = report.results
      .filter((r) => r.status === 'UNSUPPORTED')
      .map((r) => `${r.suite}/${r.name}: ${r.detail}`);
    if (unsupported.length > 0) console.warn(`unsupported:\n${unsupported.join('\n')}`);
    expect(unsupported).toEqual([]);
  });

  test('the light CNNs run in seconds on the CPU', () => {
    const slow = report.results.filter((r) => r.suite === 'light' && r.seconds > 30).map((r) => `${r.name}: ${r.seconds.toFixed(1)} s`);
    expect(slow).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// Generated op cases checked against onnxruntime.

interface InputSpec {
  name: string;
  dims: number[];
  dtype?: DType;
  /** Explicit values; otherwise seeded random floats in [-scale, scale) (absolute values when positive). */
  data?: number[];
  scale?: number;
  positive?: boolean;
}

interface OpCase {
  name: string;
  opset: number;
  nodes: NodeSpec[];
  inputs: InputSpec[];
  outputs: { name: string; dtype?: DType }[];
  initializers?: (TensorSpec & { name: string })[];
}

const f32 = (name: string, dims: number[], seed: number, scale = 1): TensorSpec & { name: string } => ({
  name,
  dims,
  data: seededFloats(dims.reduce((a, b) => a * b, 1), seed, scale),
});
const i64 = (name: string, data: number[], dims = [data.length]): TensorSpec & { name: string } => ({ name, dtype: 'int64', dims, data });
const f32c = (name: string, data: number[], dims = [data.length]): TensorSpec & { name: string } => ({ name, dims, data });

/** One node Y = op(X, ...consts) on a random X. */
function single(name: string, opset: number, op: string, dims: number[], attrs: NodeSpec['attrs'] = {},
  extra: { inits?: (TensorSpec & { name: string })[]; positive?: boolean; outputs?: { name: string; dtype?: DType }[]; extraInputs?: string[] } = {}): OpCase {
  const inits = extra.inits ?? [];
  const outs = extra.outputs ?? [{ name: 'y' }];
  return {
    name,
    opset,
    inputs: [{ name: 'x', dims, positive: extra.positive }],
    initializers: inits,
    nodes: [{ op, inputs: ['x', ...(extra.extraInputs ?? inits.map((i) => i.name))], outputs: outs.map((o) => o.name), attrs }],
    outputs: outs,
  };
}

function opCases(): OpCase[] {
  const c: OpCase[] = [];
  // Conv: auto_pad, groups, dilations, 1-D / 3-D.
  c.push(single('conv2d_same_upper_s2', 11, 'Conv', [1, 3, 7, 7], { auto_pad: 'SAME_UPPER', strides: [2, 2] }, { inits: [f32('w', [4, 3, 3, 3], 2), f32('b', [4], 3)] }));
  c.push(single('conv2d_same_lower_k4', 11, 'Conv', [1, 2, 6, 5], { auto_pad: 'SAME_LOWER', strides: [2, 1], kernel_shape: [4, 4] }, { inits: [f32('w', [3, 2, 4, 4], 4)] }));
  c.push(single('conv2d_valid', 13, 'Conv', [2, 2, 6, 6], { auto_pad: 'VALID', strides: [2, 2] }, { inits: [f32('w', [3, 2, 3, 3], 5)] }));
  c.push(single('conv1d_groups_dilated', 11, 'Conv', [1, 4, 11], { group: 2, dilations: [2], pads: [2, 1], strides: [2] }, { inits: [f32('w', [6, 2, 3], 6), f32('b', [6], 7)] }));
  c.push(single('conv3d_groups_strided', 11, 'Conv', [1, 4, 5, 6, 5], { group: 2, strides: [2, 1, 2], pads: [1, 0, 1, 1, 1, 0] }, { inits: [f32('w', [4, 2, 3, 2, 3], 8), f32('b', [4], 9)] }));
  c.push(single('conv2d_depthwise_1x1', 13, 'Conv', [1, 4, 5, 5], { group: 4 }, { inits: [f32('w', [4, 1, 1, 1], 10)] }));
  c.push(single('conv2d_large_gemm', 13, 'Conv', [1, 16, 20, 20], { pads: [1, 1, 1, 1] }, { inits: [f32('w', [32, 16, 3, 3], 11, 0.2), f32('b', [32], 12)] }));
  // ConvTranspose.
  c.push(single('convtranspose2d_stride_outpad_groups', 11, 'ConvTranspose', [1, 4, 3, 4], { strides: [2, 2], output_padding: [1, 0], group: 2, dilations: [1, 2], pads: [1, 0, 0, 1] }, { inits: [f32('w', [4, 3, 3, 3], 13), f32('b', [6], 14)] }));
  c.push(single('convtranspose1d_output_shape', 11, 'ConvTranspose', [1, 2, 5], { strides: [3], output_shape: [16] }, { inits: [f32('w', [2, 3, 3], 15)] }));
  c.push(single('convtranspose2d_output_shape_odd_total', 13, 'ConvTranspose', [1, 1, 3, 3], { strides: [2, 2], output_shape: [6, 5] }, { inits: [f32('w', [1, 2, 3, 3], 17)] }));
  c.push(single('convtranspose2d_same_upper', 13, 'ConvTranspose', [1, 1, 3, 3], { strides: [2, 2], auto_pad: 'SAME_UPPER' }, { inits: [f32('w', [1, 2, 3, 3], 18)] }));
  c.push(single('convtranspose2d_same_lower', 13, 'ConvTranspose', [1, 1, 3, 3], { strides: [2, 2], auto_pad: 'SAME_LOWER' }, { inits: [f32('w', [1, 2, 3, 3], 19)] }));
  c.push(single('convtranspose3d', 11, 'ConvTranspose', [1, 2, 3, 3, 2], { strides: [2, 1, 2], pads: [1, 0, 0, 0, 1, 1] }, { inits: [f32('w', [2, 2, 3, 2, 2], 16)] }));
  // Pooling.
  c.push(single('maxpool2d_ceil_dilated', 12, 'MaxPool', [1, 2, 9, 8], { kernel_shape: [3, 2], strides: [2, 2], pads: [1, 0, 1, 1], dilations: [1, 2], ceil_mode: 1 }));
  c.push(single('maxpool1d_same_upper', 11, 'MaxPool', [2, 3, 10], { kernel_shape: [4], strides: [3], auto_pad: 'SAME_UPPER' }));
  c.push(single('maxpool2d_indices', 12, 'MaxPool', [1, 2, 5, 5], { kernel_shape: [2, 2], strides: [2, 2], pads: [0, 0, 1, 1] }, { outputs: [{ name: 'y' }, { name: 'idx', dtype: 'int64' }] }));
  c.push(single('averagepool2d_count_pad_ceil', 19, 'AveragePool', [1, 2, 7, 6], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], count_include_pad: 1, ceil_mode: 1 }));
  c.push(single('averagepool2d_exclude_pad', 11, 'AveragePool', [1, 2, 7, 6], { kernel_shape: [3, 2], strides: [2, 1], pads: [1, 1, 1, 0] }));
  c.push(single('averagepool3d_same_lower', 11, 'AveragePool', [1, 1, 5, 4, 5], { kernel_shape: [2, 3, 2], strides: [2, 2, 2], auto_pad: 'SAME_LOWER' }));
  c.push(single('globalaveragepool', 13, 'GlobalAveragePool', [2, 3, 4, 5]));
  c.push(single('globalmaxpool', 13, 'GlobalMaxPool', [2, 3, 4, 5]));
  // Gemm / MatMul.
  c.push({ name: 'gemm_trans_alpha_beta_bcast', opset: 13, inputs: [{ name: 'a', dims: [5, 3] }, { name: 'b', dims: [4, 5] }], initializers: [f32('c', [4], 20)],
    nodes: [{ op: 'Gemm', inputs: ['a', 'b', 'c'], outputs: ['y'], attrs: { transA: 1, transB: 1, alpha: 0.5, beta: attr.float(2) } }], outputs: [{ name: 'y' }] });
  c.push({ name: 'gemm_no_c', opset: 13, inputs: [{ name: 'a', dims: [3, 6] }, { name: 'b', dims: [6, 2] }],
    nodes: [{ op: 'Gemm', inputs: ['a', 'b'], outputs: ['y'] }], outputs: [{ name: 'y' }] });
  c.push({ name: 'matmul_batched_broadcast', opset: 13, inputs: [{ name: 'a', dims: [2, 1, 3, 4] }, { name: 'b', dims: [5, 4, 2] }],
    nodes: [{ op: 'MatMul', inputs: ['a', 'b'], outputs: ['y'] }], outputs: [{ name: 'y' }] });
  c.push({ name: 'matmul_vector_matrix', opset: 13, inputs: [{ name: 'a', dims: [4] }, { name: 'b', dims: [3, 4, 2] }],
    nodes: [{ op: 'MatMul', inputs: ['a', 'b'], outputs: ['y'] }], outputs: [{ name: 'y' }] });
  c.push({ name: 'matmul_matrix_vector', opset: 13, inputs: [{ name: 'a', dims: [2, 3, 4] }, { name: 'b', dims: [4] }],
    nodes: [{ op: 'MatMul', inputs: ['a', 'b'], outputs: ['y'] }], outputs: [{ name: 'y' }] });
  c.push({ name: 'matmul_large', opset: 13, inputs: [{ name: 'a', dims: [70, 300] }, { name: 'b', dims: [300, 90] }],
    nodes: [{ op: 'MatMul', inputs: ['a', 'b'], outputs: ['y'] }], outputs: [{ name: 'y' }] });
  // Element-wise arithmetic with broadcasting.
  for (const op of ['Add', 'Sub', 'Mul', 'Div', 'Pow']) {
    c.push({ name: `${op.toLowerCase()}_broadcast`, opset: 14, inputs: [{ name: 'a', dims: [2, 3, 1, 5], positive: op === 'Pow' }, { name: 'b', dims: [4, 1] }],
      nodes: [{ op, inputs: ['a', 'b'], outputs: ['y'] }], outputs: [{ name: 'y' }] });
  }
  for (const op of ['Max', 'Min', 'Sum', 'Mean']) {
    c.push({ name: `${op.toLowerCase()}_variadic`, opset: 13, inputs: [{ name: 'a', dims: [3, 4] }, { name: 'b', dims: [4] }, { name: 'c', dims: [3, 1] }],
      nodes: [{ op, inputs: ['a', 'b', 'c'], outputs: ['y'] }], outputs: [{ name: 'y' }] });
  }
  for (const op of ['Equal', 'Greater', 'Less', 'GreaterOrEqual', 'LessOrEqual']) {
    c.push({ name: `${op.toLowerCase()}_int64`, opset: 16, inputs: [{ name: 'a', dims: [2, 3], dtype: 'int64', data: [1, 5, 3, 2, 2, 9] }, { name: 'b', dims: [3], dtype: 'int64', data: [1, 2, 3] }],
      nodes: [{ op, inputs: ['a', 'b'], outputs: ['y'] }], outputs: [{ name: 'y', dtype: 'bool' }] });
  }
  c.push({ name: 'logic_and_or_not_where', opset: 16, inputs: [{ name: 'a', dims: [2, 3] }, { name: 'b', dims: [3] }],
    nodes: [
      { op: 'Greater', inputs: ['a', 'b'], outputs: ['g'] },
      { op: 'Less', inputs: ['a', 'b'], outputs: ['l'] },
      { op: 'Not', inputs: ['l'], outputs: ['nl'] },
      { op: 'And', inputs: ['g', 'nl'], outputs: ['and'] },
      { op: 'Or', inputs: ['and', 'l'], outputs: ['or'] },
      { op: 'Where', inputs: ['or', 'a', 'b'], outputs: ['y'] },
    ], outputs: [{ name: 'y' }, { name: 'and', dtype: 'bool' }] });
  // Unary math and activations.
  const unary: [string, number, NodeSpec['attrs'], boolean?][] = [
    ['Relu', 14, {}], ['LeakyRelu', 16, { alpha: 0.2 }], ['Elu', 6, { alpha: 0.7 }], ['Selu', 6, {}], ['Sigmoid', 13, {}],
    ['HardSigmoid', 6, { alpha: 0.3, beta: 0.4 }], ['HardSwish', 14, {}], ['Tanh', 13, {}], ['Erf', 13, {}],
    ['Gelu', 20, {}], ['Softplus', 6, {}], ['Softsign', 6, {}], ['Celu', 12, { alpha: 1.5 }], ['ThresholdedRelu', 10, { alpha: 0.3 }],
    ['Sqrt', 13, {}, true], ['Exp', 13, {}], ['Log', 13, {}, true], ['Neg', 13, {}], ['Abs', 13, {}], ['Reciprocal', 13, {}, true],
    ['Floor', 13, {}], ['Ceil', 13, {}], ['Round', 11, {}], ['Sign', 13, {}], ['Sin', 7, {}], ['Cos', 7, {}], ['Mish', 18, {}],
  ];
  for (const [op, opset, attrs, positive] of unary) c.push(single(`${op.toLowerCase()}`, opset, op, [2, 3, 4], attrs, { positive }));
  c.push(single('gelu_tanh', 20, 'Gelu', [3, 5], { approximate: 'tanh' }));
  c.push(single('clip_attrs_opset6', 6, 'Clip', [3, 4], { min: -0.3, max: 0.5 }));
  c.push(single('clip_min_only_opset13', 13, 'Clip', [3, 4], {}, { inits: [f32c('lo', [-0.2], [])] }));
  c.push(single('clip_max_only_opset13', 13, 'Clip', [3, 4], {}, { inits: [f32c('hi', [0.1], [])], extraInputs: ['', 'hi'] }));
  c.push(single('prelu_channel_slope', 16, 'PRelu', [2, 3, 4, 4], {}, { inits: [f32('slope', [3, 1, 1], 30)] }));
  // Softmax family: coerce-to-2D (< 13) vs single axis (>= 13).
  for (const op of ['Softmax', 'LogSoftmax', 'Hardmax']) {
    c.push(single(`${op.toLowerCase()}_opset11_axis1`, 11, op, [2, 3, 4], { axis: 1 }));
    c.push(single(`${op.toLowerCase()}_opset13_axis1`, 13, op, [2, 3, 4], { axis: 1 }));
    c.push(single(`${op.toLowerCase()}_opset13_default`, 13, op, [2, 3, 4]));
  }
  // Normalization.
  c.push(single('layernorm_last_axis', 17, 'LayerNormalization', [2, 3, 8], { epsilon: 1e-3 }, { inits: [f32('scale', [8], 31), f32('bias', [8], 32)] }));
  c.push(single('layernorm_axis1_with_stats', 17, 'LayerNormalization', [2, 3, 4], { axis: 1 }, { inits: [f32('scale', [3, 4], 33)], outputs: [{ name: 'y' }, { name: 'mean' }, { name: 'invstd' }] }));
  c.push(single('batchnorm_opset15', 15, 'BatchNormalization', [2, 3, 4, 2], { epsilon: 1e-3 }, { inits: [f32('s', [3], 34), f32('b', [3], 35), f32('m', [3], 36), f32c('v', [0.5, 1, 2])] }));
  c.push(single('instancenorm', 6, 'InstanceNormalization', [2, 3, 5, 4], { epsilon: 1e-4 }, { inits: [f32('s', [3], 37), f32('b', [3], 38)] }));
  c.push(single('lrn_size3', 13, 'LRN', [1, 5, 3, 3], { size: 3, alpha: 0.001, beta: 0.6, bias: attr.float(2) }));
  // Reductions: axes attribute vs input, keepdims, noop_with_empty_axes.
  c.push(single('reducemean_axes_attr_nokeep', 13, 'ReduceMean', [2, 3, 4], { axes: [0, -1], keepdims: 0 }));
  c.push(single('reducesum_axes_input', 13, 'ReduceSum', [2, 3, 4], {}, { inits: [i64('axes', [1])] }));
  c.push(single('reducesum_noop_empty_axes', 13, 'ReduceSum', [2, 3], { noop_with_empty_axes: 1 }));
  c.push(single('reducemax_opset18_axes_input', 18, 'ReduceMax', [2, 3, 4], { keepdims: 0 }, { inits: [i64('axes', [-2])] }));
  c.push(single('reducemin_all', 11, 'ReduceMin', [2, 3, 4]));
  c.push(single('reduceprod_axis', 11, 'ReduceProd', [2, 3, 4], { axes: [2] }));
  c.push(single('reducel2_opset18', 18, 'ReduceL2', [2, 3, 4], {}, { inits: [i64('axes', [0, 2])] }));
  c.push(single('reducelogsumexp', 13, 'ReduceLogSumExp', [2, 3, 4], { axes: [1] }));
  c.push(single('argmax_last_index_nokeep', 13, 'ArgMax', [3, 4], { axis: 1, keepdims: 0, select_last_index: 1 }, { outputs: [{ name: 'y', dtype: 'int64' }] }));
  c.push(single('argmin_axis0', 13, 'ArgMin', [3, 4], { axis: 0 }, { outputs: [{ name: 'y', dtype: 'int64' }] }));
  // Resize / Upsample.
  const roi = f32c('roi', [], [0]);
  c.push(single('resize_nearest_asymmetric_floor', 13, 'Resize', [1, 2, 3, 4], { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' }, { inits: [roi, f32c('scales', [1, 1, 2, 1.5])] }));
  c.push(single('resize_nearest_half_pixel_ceil', 13, 'Resize', [1, 1, 4, 5], { mode: 'nearest', nearest_mode: 'round_prefer_ceil' }, { inits: [roi, f32c('scales', [1, 1, 1.7, 0.6])] }));
  c.push(single('resize_nearest_default_sizes', 13, 'Resize', [1, 1, 3, 3], { mode: 'nearest' }, { inits: [roi, f32c('scales', []), i64('sizes', [1, 1, 7, 2])] }));
  c.push(single('resize_linear_half_pixel', 13, 'Resize', [1, 2, 3, 4], { mode: 'linear' }, { inits: [roi, f32c('scales', [1, 1, 2, 2])] }));
  c.push(single('resize_linear_align_corners', 13, 'Resize', [1, 1, 4, 4], { mode: 'linear', coordinate_transformation_mode: 'align_corners' }, { inits: [roi, f32c('scales', [1, 1, 1.5, 2.5])] }));
  c.push(single('resize_linear_pytorch_half_pixel_sizes', 13, 'Resize', [1, 1, 5, 4], { mode: 'linear', coordinate_transformation_mode: 'pytorch_half_pixel' }, { inits: [roi, f32c('scales', []), i64('sizes', [1, 1, 3, 1])] }));
  c.push(single('resize_linear_downsample_asymmetric', 13, 'Resize', [1, 1, 6, 8], { mode: 'linear', coordinate_transformation_mode: 'asymmetric' }, { inits: [roi, f32c('scales', [1, 1, 0.5, 0.375])] }));
  c.push(single('resize_cubic_half_pixel', 13, 'Resize', [1, 1, 4, 4], { mode: 'cubic' }, { inits: [roi, f32c('scales', [1, 1, 2, 1.5])] }));
  c.push(single('resize_cubic_exclude_outside', 13, 'Resize', [1, 1, 4, 4], { mode: 'cubic', exclude_outside: 1, cubic_coeff_a: -0.5 }, { inits: [roi, f32c('scales', [1, 1, 0.8, 1.25])] }));
  c.push(single('resize_tf_crop_and_resize', 13, 'Resize', [1, 1, 4, 4], { mode: 'linear', coordinate_transformation_mode: 'tf_crop_and_resize', extrapolation_value: attr.float(10) }, { inits: [f32c('roi2', [0, 0, 0.4, 0.6, 1, 1, 1.2, 1.7]), f32c('scales', []), i64('sizes', [1, 1, 3, 3])] }));
  c.push(single('resize_opset11_tf_half_pixel_for_nn', 11, 'Resize', [1, 1, 3, 4], { mode: 'nearest', coordinate_transformation_mode: 'tf_half_pixel_for_nn' }, { inits: [roi, f32c('scales', [1, 1, 1.6, 0.7])] }));
  c.push(single('resize_half_pixel_symmetric', 19, 'Resize', [1, 1, 3, 4], { mode: 'linear', coordinate_transformation_mode: 'half_pixel_symmetric' }, { inits: [roi, f32c('scales', [1, 1, 1.7, 0.6])] }));
  c.push(single('resize_keep_aspect_not_larger', 18, 'Resize', [1, 1, 4, 6], { mode: 'nearest', keep_aspect_ratio_policy: 'not_larger', axes: [2, 3] }, { inits: [roi, f32c('scales', []), i64('sizes', [6, 6])] }));
  c.push(single('lp_normalization', 13, 'LpNormalization', [2, 3, 4], { axis: 1, p: 1 }));
  c.push(single('batchnorm_opset7_per_activation', 7, 'BatchNormalization', [2, 2, 3], { spatial: 0 }, { inits: [f32('s', [2, 3], 40), f32('b', [2, 3], 41), f32('m', [2, 3], 42), f32c('v', [1, 2, 3, 0.5, 1.5, 2.5], [2, 3])] }));
  c.push(single('resize_opset10_nearest', 10, 'Resize', [1, 1, 2, 3], { mode: 'nearest' }, { inits: [f32c('scales', [1, 1, 2, 3])] }));
  c.push(single('resize_opset19_axes', 19, 'Resize', [1, 2, 3, 4], { mode: 'linear', axes: [2, 3] }, { inits: [roi, f32c('scales', [1.5, 2])] }));
  c.push(single('upsample_opset9_nearest', 9, 'Upsample', [1, 1, 2, 3], { mode: 'nearest' }, { inits: [f32c('scales', [1, 1, 2, 2])] }));
  c.push(single('upsample_opset7_linear', 7, 'Upsample', [1, 1, 2, 3], { mode: 'linear', scales: attr.floats([1, 1, 2, 2]) }));
  // Pad.
  c.push(single('pad_opset6_attr_constant', 6, 'Pad', [2, 3], { pads: [1, 0, 2, 1], value: 1.5 }));
  c.push(single('pad_opset11_reflect', 11, 'Pad', [1, 2, 4, 5], { mode: 'reflect' }, { inits: [i64('pads', [0, 0, 2, 3, 0, 0, 1, 2])] }));
  c.push(single('pad_opset13_edge', 13, 'Pad', [1, 2, 3, 3], { mode: 'edge' }, { inits: [i64('pads', [0, 1, 2, 0, 0, 0, 1, 3])] }));
  c.push(single('pad_opset13_constant_negative', 13, 'Pad', [2, 5], {}, { inits: [i64('pads', [1, -1, 0, 2]), f32c('cv', [-2], [])] }));
  c.push(single('pad_opset18_axes', 18, 'Pad', [2, 3, 4], { mode: 'constant' }, { inits: [i64('pads', [1, 2, 0, 1]), f32c('cv', [3], []), i64('axes', [0, -1])] }));
  c.push(single('pad_opset19_wrap', 19, 'Pad', [2, 3], { mode: 'wrap' }, { inits: [i64('pads', [1, 2, 1, 2])] }));
  // Slice.
  c.push(single('slice_opset9_attrs', 9, 'Slice', [4, 5, 6], { starts: [1, -4], ends: [1000, -1], axes: [0, 2] }));
  c.push(single('slice_opset13_negative_steps', 13, 'Slice', [4, 5, 6], {}, { inits: [i64('starts', [-1, 4, 100]), i64('ends', [-1000, 0, -100]), i64('axes', [0, -1, 1]), i64('steps', [-2, -1, -3])] }));
  c.push(single('slice_opset13_no_axes', 13, 'Slice', [4, 5], {}, { inits: [i64('starts', [1, 0]), i64('ends', [3, 5])] }));
  c.push(single('slice_opset13_empty', 13, 'Slice', [4, 5], {}, { inits: [i64('starts', [3]), i64('ends', [1]), i64('axes', [0])] }));
  // Concat / Split.
  c.push({ name: 'concat_axis_neg', opset: 13, inputs: [{ name: 'a', dims: [2, 3, 2] }, { name: 'b', dims: [2, 1, 2] }],
    nodes: [{ op: 'Concat', inputs: ['a', 'b'], outputs: ['y'], attrs: { axis: -2 } }], outputs: [{ name: 'y' }] });
  c.push(single('split_opset13_sizes_input', 13, 'Split', [2, 7], { axis: 1 }, { inits: [i64('split', [2, 5])], outputs: [{ name: 'y0' }, { name: 'y1' }] }));
  c.push(single('split_opset11_attr', 11, 'Split', [6, 2], { split: [1, 2, 3] }, { outputs: [{ name: 'y0' }, { name: 'y1' }, { name: 'y2' }] }));
  c.push(single('split_opset11_equal', 11, 'Split', [6, 2], { axis: 0 }, { outputs: [{ name: 'y0' }, { name: 'y1' }, { name: 'y2' }] }));
  c.push(single('split_opset18_num_outputs_uneven', 18, 'Split', [2, 7], { axis: 1, num_outputs: 3 }, { outputs: [{ name: 'y0' }, { name: 'y1' }, { name: 'y2' }] }));
  // Shapes.
  c.push(single('reshape_zero_and_minus_one', 13, 'Reshape', [2, 3, 4], {}, { inits: [i64('shape', [0, -1, 2])] }));
  c.push(single('flatten_axis0', 13, 'Flatten', [2, 3, 4], { axis: 0 }));
  c.push(single('flatten_axis_neg', 13, 'Flatten', [2, 3, 4], { axis: -1 }));
  c.push(single('transpose_default', 13, 'Transpose', [2, 3, 4]));
  c.push(single('transpose_perm', 13, 'Transpose', [2, 3, 4, 5], { perm: [0, 2, 3, 1] }));
  c.push(single('squeeze_opset13_input', 13, 'Squeeze', [1, 3, 1, 2], {}, { inits: [i64('axes', [-2])] }));
  c.push(single('squeeze_all', 11, 'Squeeze', [1, 3, 1, 2]));
  c.push(single('unsqueeze_opset13_input', 13, 'Unsqueeze', [3, 2], {}, { inits: [i64('axes', [-1, 0])] }));
  c.push(single('unsqueeze_opset11_attr', 11, 'Unsqueeze', [3, 2], { axes: [1, 3] }));
  c.push(single('expand', 13, 'Expand', [3, 1], {}, { inits: [i64('shape', [2, 1, 4])] }));
  c.push(single('tile', 13, 'Tile', [2, 3], {}, { inits: [i64('repeats', [2, 3])] }));
  c.push(single('depth_to_space_dcr', 13, 'DepthToSpace', [1, 8, 2, 3], { blocksize: 2 }));
  c.push(single('depth_to_space_crd', 13, 'DepthToSpace', [1, 8, 2, 3], { blocksize: 2, mode: 'CRD' }));
  c.push(single('space_to_depth', 13, 'SpaceToDepth', [1, 2, 4, 6], { blocksize: 2 }));
  c.push({ name: 'shape_slice_size_gather', opset: 15, inputs: [{ name: 'x', dims: [2, 3, 4, 5] }],
    nodes: [
      { op: 'Shape', inputs: ['x'], outputs: ['s'], attrs: { start: 1, end: -1 } },
      { op: 'Size', inputs: ['x'], outputs: ['n'] },
      { op: 'Gather', inputs: ['x', 'idx'], outputs: ['g'], attrs: { axis: 1 } },
    ],
    initializers: [i64('idx', [-1, 0, 2, 0], [2, 2])],
    outputs: [{ name: 's', dtype: 'int64' }, { name: 'n', dtype: 'int64' }, { name: 'g' }] });
  c.push({ name: 'gather_elements', opset: 13, inputs: [{ name: 'x', dims: [3, 4] }],
    initializers: [i64('idx', [0, 2, -1, 1, 1, 0], [3, 2])],
    nodes: [{ op: 'GatherElements', inputs: ['x', 'idx'], outputs: ['y'], attrs: { axis: 1 } }], outputs: [{ name: 'y' }] });
  c.push({ name: 'cast_chain', opset: 13, inputs: [{ name: 'x', dims: [3, 4], scale: 5 }],
    nodes: [
      { op: 'Cast', inputs: ['x'], outputs: ['i'], attrs: { to: 6 } },
      { op: 'Cast', inputs: ['i'], outputs: ['b'], attrs: { to: 9 } },
      { op: 'Cast', inputs: ['b'], outputs: ['f'], attrs: { to: 1 } },
      { op: 'Cast', inputs: ['x'], outputs: ['h'], attrs: { to: 10 } },
      { op: 'Cast', inputs: ['h'], outputs: ['hf'], attrs: { to: 1 } },
    ],
    outputs: [{ name: 'i', dtype: 'int32' }, { name: 'f' }, { name: 'hf' }] });
  c.push({ name: 'constant_of_shape_range', opset: 11, inputs: [{ name: 'x', dims: [3] }],
    initializers: [i64('shape', [2, 3]), f32c('start', [1], []), f32c('limit', [4], []), f32c('delta', [0.7], [])],
    nodes: [
      { op: 'ConstantOfShape', inputs: ['shape'], outputs: ['c'], attrs: { value: attr.tensor({ dtype: 'int64', dims: [1], data: [7] }) } },
      { op: 'Range', inputs: ['start', 'limit', 'delta'], outputs: ['r'] },
      { op: 'Constant', inputs: [], outputs: ['k'], attrs: { value_floats: attr.floats([1, 2, 3]) } },
      { op: 'Add', inputs: ['x', 'k'], outputs: ['y'] },
    ],
    outputs: [{ name: 'c', dtype: 'int64' }, { name: 'r' }, { name: 'y' }] });
  c.push(single('identity_dropout', 13, 'Dropout', [3, 4], {}, { outputs: [{ name: 'y' }, { name: 'mask', dtype: 'bool' }] }));
  // Quantization.
  c.push(single('quantize_per_tensor_uint8', 13, 'QuantizeLinear', [2, 5], {}, { inits: [f32c('s', [0.01], []), { name: 'zp', dtype: 'uint8', dims: [], data: [128] }], outputs: [{ name: 'y', dtype: 'uint8' }] }));
  c.push(single('quantize_per_axis_int8', 13, 'QuantizeLinear', [2, 3, 2], { axis: 1 }, { inits: [f32c('s', [0.01, 0.02, 0.005]), { name: 'zp', dtype: 'int8', dims: [3], data: [0, -3, 5] }], outputs: [{ name: 'y', dtype: 'int8' }] }));
  c.push({ name: 'dequantize_per_axis', opset: 13, inputs: [{ name: 'x', dims: [2, 3], dtype: 'int8', data: [-128, -1, 0, 5, 100, 127] }],
    initializers: [f32c('s', [0.5, 0.25]), { name: 'zp', dtype: 'int8', dims: [2], data: [1, -2] }],
    nodes: [{ op: 'DequantizeLinear', inputs: ['x', 's', 'zp'], outputs: ['y'], attrs: { axis: 0 } }], outputs: [{ name: 'y' }] });
  c.push({ name: 'matmul_integer_zero_points', opset: 10, inputs: [{ name: 'a', dims: [2, 3], dtype: 'uint8', data: [0, 10, 200, 255, 3, 128] }],
    initializers: [{ name: 'b', dtype: 'uint8', dims: [3, 2], data: [1, 2, 250, 4, 5, 128] }, { name: 'azp', dtype: 'uint8', dims: [], data: [12] }, { name: 'bzp', dtype: 'uint8', dims: [], data: [3] }],
    nodes: [{ op: 'MatMulInteger', inputs: ['a', 'b', 'azp', 'bzp'], outputs: ['y'] }], outputs: [{ name: 'y', dtype: 'int32' }] });
  // Indexing, sorting and Einsum.
  c.push({ name: 'gather_nd_batch_dims', opset: 13, inputs: [{ name: 'x', dims: [2, 3, 4] }],
    initializers: [i64('idx', [2, 1, 0, 0, 1, 2], [2, 3, 1])],
    nodes: [{ op: 'GatherND', inputs: ['x', 'idx'], outputs: ['y'], attrs: { batch_dims: 1 } }], outputs: [{ name: 'y' }] });
  c.push({ name: 'gather_nd_tuples', opset: 13, inputs: [{ name: 'x', dims: [3, 4, 2] }],
    initializers: [i64('idx', [0, 1, 2, -1, 1, 0], [3, 2])],
    nodes: [{ op: 'GatherND', inputs: ['x', 'idx'], outputs: ['y'] }], outputs: [{ name: 'y' }] });
  c.push({ name: 'scatter_nd_add', opset: 16, inputs: [{ name: 'x', dims: [4, 3] }, { name: 'u', dims: [2, 3] }],
    initializers: [i64('idx', [1, 3], [2, 1])],
    nodes: [{ op: 'ScatterND', inputs: ['x', 'idx', 'u'], outputs: ['y'], attrs: { reduction: 'add' } }], outputs: [{ name: 'y' }] });
  c.push({ name: 'scatter_elements_axis1', opset: 13, inputs: [{ name: 'x', dims: [3, 4] }, { name: 'u', dims: [2, 2] }],
    initializers: [i64('idx', [3, 0, -1, 1], [2, 2])],
    nodes: [{ op: 'ScatterElements', inputs: ['x', 'idx', 'u'], outputs: ['y'], attrs: { axis: 1 } }], outputs: [{ name: 'y' }] });
  c.push({ name: 'onehot_axis0', opset: 11, inputs: [{ name: 'x', dims: [3], dtype: 'int64', data: [0, 3, -1] }],
    initializers: [f32c('depth', [4], []), f32c('vals', [-1, 5])],
    nodes: [{ op: 'OneHot', inputs: ['x', 'depth', 'vals'], outputs: ['y'], attrs: { axis: 0 } }], outputs: [{ name: 'y' }] });
  c.push({ name: 'nonzero', opset: 13, inputs: [{ name: 'x', dims: [2, 3], data: [0, 1, 0, 2, 0, 3] }],
    nodes: [{ op: 'NonZero', inputs: ['x'], outputs: ['y'] }], outputs: [{ name: 'y', dtype: 'int64' }] });
  c.push(single('topk_largest_axis1', 11, 'TopK', [3, 5], { axis: 1 }, { inits: [i64('k', [3])], outputs: [{ name: 'v' }, { name: 'i', dtype: 'int64' }] }));
  c.push(single('topk_smallest_axis0', 11, 'TopK', [4, 2], { axis: 0, largest: 0 }, { inits: [i64('k', [2])], outputs: [{ name: 'v' }, { name: 'i', dtype: 'int64' }] }));
  c.push(single('cumsum_exclusive_reverse', 14, 'CumSum', [2, 4], { exclusive: 1, reverse: 1 }, { inits: [i64('axis', [1], [])] }));
  c.push(single('cumsum_axis0', 14, 'CumSum', [3, 2], {}, { inits: [i64('axis', [0], [])] }));
  c.push(single('trilu_lower_k1', 14, 'Trilu', [2, 3, 4], { upper: 0 }, { inits: [i64('k', [1], [])] }));
  c.push(single('trilu_upper', 14, 'Trilu', [4, 3]));
  c.push({ name: 'einsum_matmul', opset: 12, inputs: [{ name: 'a', dims: [3, 4] }, { name: 'b', dims: [4, 5] }],
    nodes: [{ op: 'Einsum', inputs: ['a', 'b'], outputs: ['y'], attrs: { equation: 'ij,jk->ik' } }], outputs: [{ name: 'y' }] });
  c.push({ name: 'einsum_batched_ellipsis', opset: 12, inputs: [{ name: 'a', dims: [2, 3, 4] }, { name: 'b', dims: [2, 4, 5] }],
    nodes: [{ op: 'Einsum', inputs: ['a', 'b'], outputs: ['y'], attrs: { equation: '...ij,...jk->...ik' } }], outputs: [{ name: 'y' }] });
  c.push({ name: 'einsum_attention_scores', opset: 12, inputs: [{ name: 'q', dims: [2, 3, 4, 8] }, { name: 'k', dims: [2, 3, 5, 8] }],
    nodes: [{ op: 'Einsum', inputs: ['q', 'k'], outputs: ['y'], attrs: { equation: 'bhqd,bhkd->bhqk' } }], outputs: [{ name: 'y' }] });
  c.push({ name: 'einsum_implicit_transpose', opset: 12, inputs: [{ name: 'a', dims: [3, 4] }],
    nodes: [{ op: 'Einsum', inputs: ['a'], outputs: ['y'], attrs: { equation: 'ji' } }], outputs: [{ name: 'y' }] });
  c.push({ name: 'einsum_trace_and_sum', opset: 12, inputs: [{ name: 'a', dims: [4, 4] }],
    nodes: [{ op: 'Einsum', inputs: ['a'], outputs: ['y'], attrs: { equation: 'ii->' } }], outputs: [{ name: 'y' }] });
  // QOperator-format integer ops.
  const u8 = (n: number, seed: number) => Array.from(seededFloats(n, seed), (v) => Math.floor((v + 1) * 127.5));
  c.push({ name: 'conv_integer_zero_points', opset: 10, inputs: [{ name: 'x', dims: [1, 2, 5, 5], dtype: 'uint8', data: u8(50, 60) }],
    initializers: [{ name: 'w', dtype: 'uint8', dims: [3, 2, 3, 3], data: u8(54, 61) }, { name: 'xzp', dtype: 'uint8', dims: [], data: [120] }, { name: 'wzp', dtype: 'uint8', dims: [], data: [7] }],
    nodes: [{ op: 'ConvInteger', inputs: ['x', 'w', 'xzp', 'wzp'], outputs: ['y'], attrs: { pads: [1, 1, 1, 1], strides: [2, 1] } }], outputs: [{ name: 'y', dtype: 'int32' }] });
  c.push({ name: 'qlinear_conv_per_channel_bias', opset: 13, inputs: [{ name: 'x', dims: [1, 4, 6, 6], dtype: 'uint8', data: u8(144, 62) }],
    initializers: [f32c('xs', [0.02], []), { name: 'xzp', dtype: 'uint8', dims: [], data: [128] },
      { name: 'w', dtype: 'int8', dims: [4, 2, 3, 3], data: u8(72, 63).map((v) => v - 128) }, f32c('ws', [0.01, 0.02, 0.005, 0.03]),
      { name: 'wzp', dtype: 'int8', dims: [4], data: [0, 0, 0, 0] }, f32c('ys', [0.05], []), { name: 'yzp', dtype: 'uint8', dims: [], data: [100] },
      { name: 'b', dtype: 'int32', dims: [4], data: [100, -2000, 0, 5000] }],
    nodes: [{ op: 'QLinearConv', inputs: ['x', 'xs', 'xzp', 'w', 'ws', 'wzp', 'ys', 'yzp', 'b'], outputs: ['y'], attrs: { group: 2, pads: [1, 0, 1, 2] } }],
    outputs: [{ name: 'y', dtype: 'uint8' }] });
  c.push({ name: 'qlinear_matmul', opset: 10, inputs: [{ name: 'a', dims: [2, 3, 5], dtype: 'uint8', data: u8(30, 64) }],
    initializers: [f32c('as', [0.03], []), { name: 'azp', dtype: 'uint8', dims: [], data: [110] },
      { name: 'b', dtype: 'uint8', dims: [5, 4], data: u8(20, 65) }, f32c('bs', [0.02], []), { name: 'bzp', dtype: 'uint8', dims: [], data: [130] },
      f32c('ys', [0.1], []), { name: 'yzp', dtype: 'uint8', dims: [], data: [90] }],
    nodes: [{ op: 'QLinearMatMul', inputs: ['a', 'as', 'azp', 'b', 'bs', 'bzp', 'ys', 'yzp'], outputs: ['y'] }], outputs: [{ name: 'y', dtype: 'uint8' }] });
  // float16 models (kernels compute in float32 and round; compared with a half-precision tolerance).
  const h16 = (name: string, dims: number[], seed: number, scale = 1): TensorSpec & { name: string } => ({ ...f32(name, dims, seed, scale), dtype: 'float16' });
  const half = (oc: OpCase): OpCase => ({
    ...oc,
    inputs: oc.inputs.map((i) => ({ ...i, dtype: i.dtype ?? 'float16' })),
    outputs: oc.outputs.map((o) => ({ ...o, dtype: o.dtype ?? 'float16' })),
  });
  c.push(half({ name: 'fp16_conv_relu_maxpool', opset: 13, inputs: [{ name: 'x', dims: [1, 3, 8, 8] }], initializers: [h16('w', [4, 3, 3, 3], 50, 0.3), h16('b', [4], 51)],
    nodes: [
      { op: 'Conv', inputs: ['x', 'w', 'b'], outputs: ['c'], attrs: { pads: [1, 1, 1, 1] } },
      { op: 'Relu', inputs: ['c'], outputs: ['r'] },
      { op: 'MaxPool', inputs: ['r'], outputs: ['y'], attrs: { kernel_shape: [2, 2], strides: [2, 2] } },
    ], outputs: [{ name: 'y' }] }));
  c.push(half({ name: 'fp16_matmul_gemm', opset: 13, inputs: [{ name: 'a', dims: [3, 8] }, { name: 'b', dims: [8, 4] }], initializers: [h16('c', [4], 52)],
    nodes: [
      { op: 'MatMul', inputs: ['a', 'b'], outputs: ['m'] },
      { op: 'Gemm', inputs: ['a', 'b', 'c'], outputs: ['g'], attrs: { alpha: 0.5 } },
    ], outputs: [{ name: 'm' }, { name: 'g' }] }));
  c.push(half({ name: 'fp16_layernorm_gelu_softmax', opset: 20, inputs: [{ name: 'x', dims: [2, 3, 8] }], initializers: [h16('s', [8], 53), h16('b', [8], 54)],
    nodes: [
      { op: 'LayerNormalization', inputs: ['x', 's', 'b'], outputs: ['n'] },
      { op: 'Gelu', inputs: ['n'], outputs: ['g'] },
      { op: 'Softmax', inputs: ['g'], outputs: ['y'] },
    ], outputs: [{ name: 'y' }] }));
  c.push(half({ name: 'fp16_batchnorm_sigmoid_mean', opset: 15, inputs: [{ name: 'x', dims: [2, 3, 4, 4] }],
    initializers: [h16('s', [3], 55), h16('b', [3], 56), h16('m', [3], 57), { name: 'v', dtype: 'float16', dims: [3], data: [0.5, 1, 2] }],
    nodes: [
      { op: 'BatchNormalization', inputs: ['x', 's', 'b', 'm', 'v'], outputs: ['n'] },
      { op: 'Sigmoid', inputs: ['n'], outputs: ['g'] },
      { op: 'AveragePool', inputs: ['g'], outputs: ['p'], attrs: { kernel_shape: [2, 2] } },
      { op: 'ReduceMean', inputs: ['p'], outputs: ['y'], attrs: { axes: [1], keepdims: 0 } },
    ], outputs: [{ name: 'y' }] }));
  c.push(half({ name: 'fp16_broadcast_arith_transpose_concat', opset: 13, inputs: [{ name: 'a', dims: [2, 3] }, { name: 'b', dims: [3] }],
    nodes: [
      { op: 'Add', inputs: ['a', 'b'], outputs: ['s'] },
      { op: 'Mul', inputs: ['s', 'b'], outputs: ['m'] },
      { op: 'Transpose', inputs: ['m'], outputs: ['t'] },
      { op: 'Concat', inputs: ['t', 't'], outputs: ['y'], attrs: { axis: 1 } },
    ], outputs: [{ name: 'y' }] }));
  return c;
}

/** IEEE half bits -> number. */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

const ORT_TO_DTYPE: Record<string, DType> = { float32: 'float32', float16: 'float16', int64: 'int64', int32: 'int32', int8: 'int8', uint8: 'uint8', bool: 'bool' };

describe('native CPU reference kernels vs onnxruntime on generated op cases', () => {
  let report: Report;
  let workDir = '';
  const oracleErrors: string[] = [];

  beforeAll(() => {
    buildRunner();
    workDir = mkdtempSync(join(tmpdir(), 'pf-opcases-'));
    const casesDir = join(workDir, 'onnxruntime-oracle');
    const cases = opCases();
    // Each case also runs with every input dim symbolic (same data): shape inference must cope
    // with unknown dims and still agree with what the kernels compute.
    const symbolicDir = (name: string) => join(casesDir, `${name}__symbolic_dims`);
    const jobs = cases.map((oc, ci) => {
      const dir = join(casesDir, oc.name);
      mkdirSync(join(dir, 'test_data_set_0'), { recursive: true });
      mkdirSync(join(symbolicDir(oc.name), 'test_data_set_0'), { recursive: true });
      const modelWith = (symbolic: boolean) =>
        makeModel({
          opset: oc.opset,
          irVersion: oc.opset < 9 ? 3 : 8,
          inputs: oc.inputs.map((i, k) => ({
            name: i.name,
            dtype: i.dtype ?? 'float32',
            shape: symbolic ? i.dims.map((_, d) => `in${k}_d${d}`) : i.dims,
          })),
          outputs: oc.outputs.map((o) => ({ name: o.name, dtype: o.dtype ?? 'float32' })),
          initializers: oc.initializers,
          initializersAsInputs: oc.opset < 9,
          nodes: oc.nodes,
        });
      writeFileSync(join(dir, 'model.onnx'), modelWith(false));
      writeFileSync(join(symbolicDir(oc.name), 'model.onnx'), modelWith(true));
      const feeds = oc.inputs.map((inp, k) => {
        const n = inp.dims.reduce((a, b) => a * b, 1);
        let data = inp.data ?? Array.from(seededFloats(n, 1000 + ci * 17 + k, inp.scale ?? 1));
        if (inp.positive) data = data.map((v) => Math.abs(v) + 0.05);
        const dtype = inp.dtype ?? 'float32';
        const pb = makeTensorProto({ dtype, dims: inp.dims, data });
        writeFileSync(join(dir, 'test_data_set_0', `input_${k}.pb`), pb);
        writeFileSync(join(symbolicDir(oc.name), 'test_data_set_0', `input_${k}.pb`), pb);
        // onnxruntime takes float16 as raw half bits.
        return { name: inp.name, type: dtype, dims: inp.dims, data: dtype === 'float16' ? data.map((v) => floatToHalf(v)) : data };
      });
      return { model: join(dir, 'model.onnx'), feeds };
    });
    const results = onnxruntimeOutputs(jobs);
    results.forEach((res, ci) => {
      const dir = join(casesDir, cases[ci].name);
      if ('error' in res) {
        // The oracle itself rejects the case: drop it and say so.
        oracleErrors.push(`${cases[ci].name}: ${res.error}`);
        rmSync(dir, { recursive: true, force: true });
        rmSync(symbolicDir(cases[ci].name), { recursive: true, force: true });
        return;
      }
      res.outputs.forEach((o, k) => {
        const dtype = ORT_TO_DTYPE[o.type];
        if (!dtype) throw new Error(`${cases[ci].name}: unexpected onnxruntime output type ${o.type}`);
        const data = dtype === 'float16' ? o.data.map(halfToFloat) : o.data;
        const pb = makeTensorProto({ dtype, dims: o.dims, data });
        writeFileSync(join(dir, 'test_data_set_0', `output_${k}.pb`), pb);
        writeFileSync(join(symbolicDir(cases[ci].name), 'test_data_set_0', `output_${k}.pb`), pb);
      });
    });
    report = runConformance(workDir, 'generated-op-cases', ['--cases', casesDir]);
  }, 600_000);

  afterAll(() => {
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });

  test('onnxruntime accepts every generated case', () => {
    expect(oracleErrors).toEqual([]);
  });

  test('every generated case matches onnxruntime', () => {
    const bad = report.results.filter((r) => r.status !== 'PASS').map((r) => `${r.name}: ${r.status} ${r.detail}`);
    expect(bad).toEqual([]);
    expect(report.cases).toBeGreaterThan(100);
  });
});
