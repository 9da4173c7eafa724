/**
 * The native optimizer through the Node binding (libs/native): checkModel, build -> inspect -> run,
 * determinism, damaged plans, SM checks, profiles, unsupported ops, external data, bad ONNX bytes,
 * cancellation and progress.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import {
  BuildError,
  OPTIMIZER_VERSION,
  buildPlan,
  checkModel,
  inspectPlan,
  runPlan,
  supportedOps,
  type BuildPlanOptions,
  type PlanInfo,
} from '../../libs/native/index.js';
import { attr, makeModel, seededFloats, tensorBytes, tinyConvNet } from '../helpers/onnx-builder.js';

/**
 * onnxruntime-node as the numerical oracle, in a child process: inside jest's VM realm its typed
 * arrays fail onnxruntime's instanceof checks.
 */
function onnxruntimeRun(modelPath: string, name: string, shape: number[], data: Float32Array): Float32Array {
  const script = `
    const ort = require('onnxruntime-node');
    const [model, name, shape, data] = JSON.parse(require('fs').readFileSync(0, 'utf8'));
    ort.InferenceSession.create(model).then(async (s) => {
      const feeds = { [name]: new ort.Tensor('float32', Float32Array.from(data), shape) };
      const out = await s.run(feeds);
      process.stdout.write(JSON.stringify(Array.from(out[s.outputNames[0]].data)));
    });`;
  const r = spawnSync(process.execPath, ['-e', script], {
    input: JSON.stringify([modelPath, name, shape, Array.from(data)]),
    encoding: 'utf8',
    cwd: process.cwd(),
  });
  if (r.status !== 0) throw new Error(`onnxruntime failed: ${r.stderr}`);
  return Float32Array.from(JSON.parse(r.stdout) as number[]);
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'pf-native-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function write(name: string, bytes: Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

/** input[batch,4] -> Gemm(8) -> Relu -> Add(folded constant) -> Sigmoid -> output[batch,8]. */
function mlpModel(): Buffer {
  return makeModel({
    opset: 13,
    graphName: 'mlp',
    inputs: [{ name: 'input', dtype: 'float32', shape: ['batch', 4] }],
    outputs: [{ name: 'output', dtype: 'float32', shape: ['batch', 8] }],
    initializers: [
      { name: 'w', dims: [8, 4], data: seededFloats(32, 11, 0.5) },
      { name: 'b', dims: [8], data: seededFloats(8, 12, 0.1) },
      { name: 'c1', dims: [8], data: seededFloats(8, 13) },
      { name: 'c2', dims: [8], data: seededFloats(8, 14) },
    ],
    nodes: [
      { op: 'Gemm', name: 'fc', inputs: ['input', 'w', 'b'], outputs: ['h'], attrs: { transB: 1, alpha: attr.float(1) } },
      { op: 'Relu', name: 'relu', inputs: ['h'], outputs: ['r'] },
      { op: 'Add', name: 'const_add', inputs: ['c1', 'c2'], outputs: ['c'] },
      { op: 'Mul', name: 'dead_mul', inputs: ['r', 'c'], outputs: ['unused'] },
      { op: 'Add', name: 'shift', inputs: ['r', 'c'], outputs: ['s'] },
      { op: 'Sigmoid', name: 'sigmoid', inputs: ['s'], outputs: ['output'] },
    ],
  });
}

function baseOptions(modelPath: string, outputPath: string, extra: Partial<BuildPlanOptions> = {}): BuildPlanOptions {
  return { modelPath, outputPath, target: 'sm_90', precision: 'fp32', ...extra };
}

async function expectCode(p: Promise<unknown>, code: string, message?: RegExp | string): Promise<BuildError> {
  let caught: unknown;
  try {
    await p;
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(BuildError);
  const e = caught as BuildError;
  expect(e.code).toBe(code);
  if (message) expect(e.message).toMatch(message);
  return e;
}

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

/** The kernel blobs of a plan file, read from its kernels section (id 4, see native/PLAN_FORMAT.md). */
function planKernelBlobs(planPath: string): { sm: number; name: string; image: Buffer }[] {
  const b = readFileSync(planPath);
  expect(b.subarray(0, 6).toString('latin1')).toBe('PFPLAN');
  const sections = b.readUInt32LE(12);
  for (let i = 0; i < sections; i++) {
    const entry = 16 + i * 24;
    if (b.readUInt32LE(entry) !== 4) continue;
    let at = Number(b.readBigUInt64LE(entry + 8));
    const blobs: { sm: number; name: string; image: Buffer }[] = [];
    const count = b.readUInt32LE(at);
    at += 4;
    for (let k = 0; k < count; k++) {
      const sm = b.readUInt32LE(at);
      const nameLength = b.readUInt32LE(at + 4);
      const name = b.subarray(at + 8, at + 8 + nameLength).toString('utf8');
      at += 8 + nameLength;
      const size = Number(b.readBigUInt64LE(at));
      blobs.push({ sm, name, image: b.subarray(at + 8, at + 8 + size) });
      at += 8 + size;
    }
    return blobs;
  }
  return [];
}

/** SM of a cubin from its ELF64 header: EM_CUDA (190), SM = (e_flags >> 8) & 0xff. */
function cubinSm(image: Buffer): number {
  expect(image.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
  expect(image[4]).toBe(2); // ELFCLASS64
  expect(image.readUInt16LE(18)).toBe(190); // EM_CUDA
  return (image.readUInt32LE(48) >> 8) & 0xff;
}

/** A cross-built plan carries exactly one cubin, compiled for the plan's own SM, with untuned tactics. */
function expectOwnSmCubin(planPath: string, info: PlanInfo): void {
  const sm = Number(info.header.sm.slice(3));
  expect(info.header.tuned).toBe(false);
  expect(info.kernels).toEqual([{ sm: info.header.sm, name: 'planforge_kernels', size: expect.any(Number) }]);
  expect(info.kernelsSummary).toMatch(new RegExp(`^planforge_kernels for ${info.header.sm} \\(\\d+ bytes\\), heuristic tactics \\(untuned\\)$`));
  const blobs = planKernelBlobs(planPath);
  expect(blobs.map((k) => [k.sm, k.name, k.image.length])).toEqual([[sm, 'planforge_kernels', info.kernels[0].size]]);
  expect(cubinSm(blobs[0].image)).toBe(sm);
  expect(info.passes[info.passes.length - 1]).toMatchObject({ id: 'prepare_gpu', changes: [expect.stringContaining(`for ${info.header.sm}`), expect.any(String)] });
}

describe('native optimizer binding', () => {
  it('exports the optimizer version and supported ops', () => {
    expect(OPTIMIZER_VERSION).toMatch(/^\d+\.\d+\.\d+/);
    expect(supportedOps()).toEqual(expect.arrayContaining(['Conv', 'Gemm', 'Relu']));
  });

  it('checkModel describes a model, symbolic dims included', async () => {
    const path = write('tiny.onnx', tinyConvNet());
    const info = await checkModel(path);
    expect(info).toMatchObject({
      irVersion: 8,
      opsetVersion: 13,
      producerName: 'planforge-onnx-builder',
      graphName: 'tiny_cnn',
      nodeCount: 8,
      initializerCount: 8,
      inputs: [{ name: 'input', dtype: 'float32', shape: ['batch', 3, 8, 8] }],
      outputs: [{ name: 'output', dtype: 'float32', shape: ['batch', 10] }],
    });
    expect(info.opTypes).toEqual(['BatchNormalization', 'Conv', 'Dropout', 'Flatten', 'Gemm', 'GlobalAveragePool', 'Identity', 'Relu']);
    expect(info.modelSha256).toBe(sha256(path));
  });

  it('builds, inspects and runs a plan that matches onnxruntime', async () => {
    const model = write('mlp.onnx', mlpModel());
    const planPath = join(dir, 'mlp.plan');
    const stages: [string, number][] = [];
    const summary = await buildPlan(
      baseOptions(model, planPath, {
        // The generic passes only: fusions (tested by their own suites) would merge Gemm + Relu.
        passes: ['eliminate_identity', 'fold_shape_chains', 'fold_constants', 'eliminate_dead_nodes'],
        specHash: 'spec-abc',
        profiles: { input: { min: [1, 4], opt: [2, 4], max: [4, 4] } },
        onProgress: (stage, percent) => stages.push([stage, percent]),
      }),
    );
    expect(summary.header).toEqual({
      formatVersion: 1,
      optimizerVersion: OPTIMIZER_VERSION,
      sm: 'sm_90',
      precision: 'fp32',
      modelSha256: sha256(model),
      specHash: 'spec-abc',
      tuned: false,
    });
    expect(summary.nodesBefore).toBe(6);
    expect(summary.nodesAfter).toBe(4); // const_add folded, dead_mul removed
    expect(summary.layers).toBe(4);
    expect(summary.planSize).toBe(readFileSync(planPath).length);
    expect(summary.planSha256).toBe(sha256(planPath));
    const fold = summary.passes.find((p) => p.id === 'fold_constants');
    expect(fold?.changes.join('\n')).toMatch(/Add 'const_add'/);
    const dead = summary.passes.find((p) => p.id === 'eliminate_dead_nodes');
    expect(dead?.changes.join('\n')).toMatch(/Mul 'dead_mul'/);

    // Progress: from the build thread, non-decreasing, ending at 100.
    await new Promise((r) => setImmediate(r));
    expect(stages.length).toBeGreaterThan(3);
    expect(stages[0][0]).toBe('import');
    expect(stages[stages.length - 1]).toEqual(['done', 100]);
    for (let i = 1; i < stages.length; i++) expect(stages[i][1]).toBeGreaterThanOrEqual(stages[i - 1][1]);

    const info = await inspectPlan(planPath);
    expect(info.header).toEqual(summary.header);
    expect(info.layers.map((l) => l.name)).toEqual(['fc', 'relu', 'shift', 'sigmoid']);
    expect(info.layers[0]).toMatchObject({ op: 'Gemm', precision: 'fp32', originalNodes: ['fc'] });
    expect(info.profiles).toEqual({ input: { min: [1, 4], opt: [2, 4], max: [4, 4] } });
    expect(info.inputs).toEqual([{ name: 'input', dtype: 'float32', shape: ['batch', 4] }]);
    expectOwnSmCubin(planPath, info);

    const x = seededFloats(3 * 4, 99);
    const out = await runPlan(planPath, { input: { dtype: 'float32', shape: [3, 4], data: x } });
    expect(Object.keys(out)).toEqual(['output']);
    expect(out.output.dtype).toBe('float32');
    expect(out.output.shape).toEqual([3, 8]);
    const want = onnxruntimeRun(model, 'input', [3, 4], x);
    expect(want.length).toBe(24);
    const got = out.output.data as Float32Array;
    for (let i = 0; i < want.length; i++) expect(Math.abs(got[i] - want[i])).toBeLessThan(1e-5);
  });

  it('optimizes the sample CNN and stays numerically equal to onnxruntime', async () => {
    const model = write('tiny-cnn.onnx', tinyConvNet());
    const planPath = join(dir, 'tiny-cnn.plan');
    const summary = await buildPlan(
      baseOptions(model, planPath, { profiles: { input: { min: [1, 3, 8, 8], opt: [2, 3, 8, 8], max: [4, 3, 8, 8] } } }),
    );
    expect(summary.nodesBefore).toBe(8);
    expect(summary.nodesAfter).toBeLessThan(8);
    const removed = summary.passes.find((p) => p.id === 'eliminate_identity')?.changes.join('\n');
    expect(removed).toMatch(/Identity 'identity'/);
    expect(removed).toMatch(/Dropout 'dropout'/);
    const info = await inspectPlan(planPath);
    const originals = info.layers.flatMap((l) => l.originalNodes);
    expect(originals).not.toContain('identity');
    expect(originals).toEqual(expect.arrayContaining(['conv', 'gap', 'flatten', 'fc']));
    const x = seededFloats(2 * 3 * 8 * 8, 5);
    const out = await runPlan(planPath, { input: { dtype: 'float32', shape: [2, 3, 8, 8], data: x } });
    expect(out.output.shape).toEqual([2, 10]);
    const want = onnxruntimeRun(model, 'input', [2, 3, 8, 8], x);
    const got = out.output.data as Float32Array;
    for (let i = 0; i < want.length; i++) expect(Math.abs(got[i] - want[i])).toBeLessThan(1e-4);
  });

  it('produces byte-identical plans for the same model and options', async () => {
    const model = write('det.onnx', mlpModel());
    const a = join(dir, 'det-a.plan');
    const b = join(dir, 'det-b.plan');
    const opts = { precision: 'fp16' as const, specHash: 'h1', profiles: { input: { min: [1, 4], opt: [1, 4], max: [8, 4] } } };
    const sa = await buildPlan(baseOptions(model, a, opts));
    const sb = await buildPlan(baseOptions(model, b, opts));
    expect(readFileSync(a).equals(readFileSync(b))).toBe(true);
    expect(sa.planSha256).toBe(sb.planSha256);
    const other = join(dir, 'det-c.plan');
    await buildPlan(baseOptions(model, other, { ...opts, target: 'sm_86' }));
    expect(readFileSync(other).equals(readFileSync(a))).toBe(false);
    // Each target's plan carries the cubin of its own SM (the determinism above includes it).
    expectOwnSmCubin(a, await inspectPlan(a));
    expectOwnSmCubin(other, await inspectPlan(other));
  });

  describe('with a built plan', () => {
    let planPath: string;
    beforeAll(async () => {
      planPath = join(dir, 'base.plan');
      await buildPlan(baseOptions(write('base.onnx', mlpModel()), planPath, { profiles: { input: { min: [1, 4], opt: [2, 4], max: [4, 4] } } }));
    });

    it('rejects truncated and corrupted plans with E_PLAN_FORMAT', async () => {
      const bytes = readFileSync(planPath);
      const truncated = write('truncated.plan', bytes.subarray(0, Math.floor(bytes.length / 2)));
      await expectCode(inspectPlan(truncated), 'E_PLAN_FORMAT', /truncated|checksum/);
      await expectCode(runPlan(truncated, {}), 'E_PLAN_FORMAT');
      const flipped = Buffer.from(bytes);
      flipped[Math.floor(bytes.length / 3)] ^= 0x5a;
      await expectCode(inspectPlan(write('flipped.plan', flipped)), 'E_PLAN_FORMAT', /checksum mismatch/);
      await expectCode(inspectPlan(write('empty.plan', new Uint8Array())), 'E_PLAN_FORMAT', /too short/);
      await expectCode(inspectPlan(write('onnx-as-plan.plan', mlpModel())), 'E_PLAN_FORMAT', /not a planforge plan/);
      await expectCode(inspectPlan(join(dir, 'missing.plan')), 'E_IO');
    });

    it('checks the SM only when asked (E_WRONG_SM names both)', async () => {
      const input = { input: { dtype: 'float32', shape: [1, 4], data: new Float32Array(4) } };
      await expect(runPlan(planPath, input)).resolves.toHaveProperty('output');
      await expect(runPlan(planPath, input, { expectedSm: 'sm_90' })).resolves.toHaveProperty('output');
      await expectCode(runPlan(planPath, input, { expectedSm: 'sm_80' }), 'E_WRONG_SM', /sm_90.*sm_80/);
    });

    it('rejects inputs outside the profile or of the wrong type', async () => {
      await expectCode(
        runPlan(planPath, { input: { dtype: 'float32', shape: [5, 4], data: new Float32Array(20) } }),
        'E_PROFILE',
        /outside the plan's profile/,
      );
      await expectCode(runPlan(planPath, { input: { dtype: 'float32', shape: [1, 4], data: new Float32Array(3) } }), 'E_PROFILE', /bytes/);
      await expectCode(runPlan(planPath, { input: { dtype: 'int32', shape: [1, 4], data: new Int32Array(4) } }), 'E_PROFILE', /must be float32/);
      await expectCode(runPlan(planPath, {}), 'E_PROFILE', /missing input 'input'/);
      await expectCode(runPlan(planPath, { input: { dtype: 'complex', shape: [1], data: new Float32Array(1) } }), 'E_INVALID_ARGUMENT');
    });
  });

  it('validates profiles against the model', async () => {
    const model = write('prof.onnx', mlpModel());
    const out = join(dir, 'prof.plan');
    const build = (profiles: BuildPlanOptions['profiles']) => buildPlan(baseOptions(model, out, { profiles }));
    await expectCode(build({ nope: { min: [1, 4], opt: [1, 4], max: [1, 4] } }), 'E_PROFILE', /unknown input 'nope'.*input/);
    await expectCode(build({ input: { min: [1, 4, 1], opt: [1, 4, 1], max: [1, 4, 1] } }), 'E_PROFILE', /rank 3/);
    await expectCode(build({ input: { min: [1, 3], opt: [1, 3], max: [1, 3] } }), 'E_PROFILE', /dimension 1 is fixed to 4/);
    await expectCode(build({ input: { min: [4, 4], opt: [2, 4], max: [8, 4] } }), 'E_PROFILE', /min <= opt <= max/);
    await expectCode(build({ input: { min: [1, 4], opt: [2, 4], max: [3] } }), 'E_PROFILE', /same rank/);
    await expectCode(build({ input: { min: [0, 4], opt: [2, 4], max: [3, 4] } }), 'E_INVALID_ARGUMENT', /positive integers/);
    expect(existsSync(out)).toBe(false);
  });

  it('applies import limits against allocation bombs', async () => {
    const model = write('limits.onnx', mlpModel());
    await expectCode(buildPlan(baseOptions(model, join(dir, 'l.plan'), { limits: { maxTotalBytes: 100 } })), 'E_RESOURCE', /total limit/);
    await expectCode(buildPlan(baseOptions(model, join(dir, 'l.plan'), { limits: { maxTensorBytes: 64 } })), 'E_RESOURCE', /tensor 'w' declares 128 bytes/);
    await expectCode(buildPlan(baseOptions(model, join(dir, 'l.plan'), { limits: { maxTensorBytes: -1 } })), 'E_INVALID_ARGUMENT');
    await expect(buildPlan(baseOptions(model, join(dir, 'l.plan'), { limits: { maxTotalBytes: 1 << 20 } }))).resolves.toHaveProperty('layers');
  });

  it('validates arguments in JS', async () => {
    const model = write('args.onnx', mlpModel());
    await expectCode(buildPlan(baseOptions(model, join(dir, 'x.plan'), { target: 'sm_75' as never })), 'E_INVALID_ARGUMENT', /target/);
    await expectCode(buildPlan(baseOptions(model, join(dir, 'x.plan'), { precision: 'fp8' as never })), 'E_INVALID_ARGUMENT', /precision/);
    await expectCode(buildPlan(baseOptions('', join(dir, 'x.plan'))), 'E_INVALID_ARGUMENT', /modelPath/);
    await expectCode(checkModel(42 as never), 'E_INVALID_ARGUMENT');
  });

  it('wraps native errors into BuildError', () => {
    const fromCode = BuildError.fromNative(Object.assign(new Error('bad bytes'), { code: 'E_PARSE' }));
    expect(fromCode).toBeInstanceOf(BuildError);
    expect(fromCode).toMatchObject({ code: 'E_PARSE', message: 'bad bytes', name: 'BuildError', permanent: true });
    expect(BuildError.fromNative(Object.assign(new Error('?'), { code: 'E_SOMETHING_NEW' })).code).toBe('E_INTERNAL');
    expect(BuildError.fromNative(new TypeError('inputs must be an object')).code).toBe('E_INVALID_ARGUMENT');
    expect(BuildError.fromNative('plain string').message).toBe('plain string');
    expect(new BuildError('E_IO', 'disk').permanent).toBe(false);
    // No GPU is a problem of the machine, not of the model: another worker can succeed.
    const noGpu = BuildError.fromNative(Object.assign(new Error('no CUDA driver: libcuda.so.1 not found'), { code: 'E_NO_GPU' }));
    expect(noGpu).toMatchObject({ code: 'E_NO_GPU', permanent: false });
  });

  it('lists every unsupported op with its nodes', async () => {
    const model = write(
      'unsupported.onnx',
      makeModel({
        inputs: [{ name: 'x', shape: [2] }],
        outputs: [{ name: 'z', shape: [2] }],
        nodes: [
          { op: 'FrobnicateA', name: 'fa1', inputs: ['x'], outputs: ['a'] },
          { op: 'Relu', name: 'relu', inputs: ['a'], outputs: ['b'] },
          { op: 'FrobnicateB', name: 'fb1', inputs: ['b'], outputs: ['c'] },
          { op: 'FrobnicateA', name: 'fa2', inputs: ['c'], outputs: ['z'] },
        ],
      }),
    );
    const e = await expectCode(buildPlan(baseOptions(model, join(dir, 'u.plan'))), 'E_UNSUPPORTED_OP');
    expect(e.message).toContain('FrobnicateA (fa1, fa2)');
    expect(e.message).toContain('FrobnicateB (fb1)');
    expect(e.permanent).toBe(true);
    const info = await checkModel(model);
    expect(info.supported).toBe(false);
    expect(info.unsupportedOps).toBe('FrobnicateA (fa1, fa2), FrobnicateB (fb1)');
  });

  it('confines external data to the model folder', async () => {
    const data = tensorBytes('float32', [2], [1, 2]);
    write('weights.bin', data);
    const model = (location: string) =>
      makeModel({
        inputs: [{ name: 'x', shape: [2] }],
        outputs: [{ name: 'y', shape: [2] }],
        initializers: [{ name: 'w', dims: [2], external: { location } }],
        nodes: [{ op: 'Add', name: 'add', inputs: ['x', 'w'], outputs: ['y'] }],
      });
    const ok = write('ext-ok.onnx', model('weights.bin'));
    await expect(buildPlan(baseOptions(ok, join(dir, 'ext.plan')))).resolves.toHaveProperty('layers', 1);
    const out = await runPlan(join(dir, 'ext.plan'), { x: { dtype: 'float32', shape: [2], data: new Float32Array([10, 20]) } });
    expect(Array.from(out.y.data as Float32Array)).toEqual([11, 22]);
    await expectCode(checkModel(write('ext-up.onnx', model('../etc/passwd'))), 'E_EXTERNAL_DATA', /leaves the model folder/);
    await expectCode(checkModel(write('ext-abs.onnx', model('/etc/passwd'))), 'E_EXTERNAL_DATA', /absolute path/);
    await expectCode(checkModel(write('ext-missing.onnx', model('nope.bin'))), 'E_EXTERNAL_DATA', /not found/);
  });

  it('rejects truncated and random ONNX bytes with E_PARSE', async () => {
    const good = mlpModel();
    await expectCode(checkModel(write('trunc.onnx', good.subarray(0, good.length - 7))), 'E_PARSE', /protobuf parsing stopped/);
    await expectCode(buildPlan(baseOptions(write('trunc2.onnx', good.subarray(0, 20)), join(dir, 't.plan'))), 'E_PARSE');
    let seed = 42;
    for (let i = 0; i < 20; i++) {
      const junk = Buffer.alloc(64 + i * 37);
      for (let k = 0; k < junk.length; k++) junk[k] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
      const e = await checkModel(write(`junk${i}.onnx`, junk)).then(
        () => null,
        (err: unknown) => err as BuildError,
      );
      expect(e).toBeInstanceOf(BuildError);
      expect(['E_PARSE', 'E_INVALID_MODEL', 'E_UNSUPPORTED_OP']).toContain(e?.code);
    }
    await expectCode(checkModel(write('empty.onnx', new Uint8Array())), 'E_PARSE', /empty/);
  });

  it('reports calibration problems and bad layer precisions clearly', async () => {
    const model = write('calib.onnx', mlpModel());
    const emptyDir = mkdtempSync(join(dir, 'calib-'));
    await expectCode(
      buildPlan(baseOptions(model, join(dir, 'c.plan'), { precision: 'int8', calibration: { dataDir: emptyDir, method: 'entropy' } })),
      'E_CALIBRATION',
      /calibration/,
    );
    expect(existsSync(join(dir, 'c.plan'))).toBe(false);
    await expectCode(
      buildPlan(baseOptions(model, join(dir, 'c.plan'), { layerPrecisions: { no_such_node: 'fp32' } })),
      'E_INVALID_MODEL',
      /no_such_node/,
    );
    const s = await buildPlan(baseOptions(model, join(dir, 'lp.plan'), { precision: 'fp16', layerPrecisions: { fc: 'fp32' } }));
    expect(s.header.precision).toBe('fp16');
    const info = await inspectPlan(join(dir, 'lp.plan'));
    const layerOf = (node: string) => info.layers.find((l) => l.originalNodes.includes(node));
    expect(layerOf('fc')?.precision).toBe('fp32');
    expect(layerOf('sigmoid')?.precision).toBe('fp16');
  });

  it('cancels through an AbortSignal', async () => {
    const model = write('cancel.onnx', mlpModel());
    const out = join(dir, 'cancel.plan');
    const aborted = AbortSignal.abort();
    await expectCode(buildPlan(baseOptions(model, out, { signal: aborted })), 'E_CANCELLED');

    // A model big enough that the build is still running when the first progress event arrives.
    const n = 1500;
    const nodes = Array.from({ length: n }, (_, i) => ({ op: 'Relu', name: `relu${i}`, inputs: [i ? `v${i - 1}` : 'x'], outputs: [i === n - 1 ? 'y' : `v${i}`] }));
    const big = write(
      'big.onnx',
      makeModel({
        inputs: [{ name: 'x', shape: [4] }],
        outputs: [{ name: 'y', shape: [4] }],
        initializers: [{ name: 'unused_weight', dims: [8 << 20], raw: new Uint8Array(32 << 20) }],
        nodes,
      }),
    );
    const controller = new AbortController();
    const stages: string[] = [];
    const e = await expectCode(
      buildPlan(
        baseOptions(big, out, {
          signal: controller.signal,
          onProgress: (stage) => {
            stages.push(stage);
            controller.abort();
          },
        }),
      ),
      'E_CANCELLED',
      /cancelled/,
    );
    expect(stages.length).toBeGreaterThan(0);
    expect(e.stack).toContain('native-binding.test');
    expect(existsSync(out)).toBe(false);
  });
});
