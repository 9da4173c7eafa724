/**
 * The default optimizer pipeline on the nine light CNNs of the ONNX conformance data
 * (../shared/onnx-conformance/light): each is built into an FP32 sm_90 plan with the binding's
 * buildPlan, run with runPlan (CPU reference) on a seeded random input, and compared with the
 * ORIGINAL model run by onnxruntime-node; the pass statistics must show the folding and fusion.
 *
 * The light models carry their weights as ConstantOfShape nodes (constant-valued tensors), which
 * the importer materializes before the passes run. Outputs are softmax probabilities (DenseNet-121: the
 * final 1x1 Conv's logits), so the error is measured against the output scale (see TOLERANCE). With
 * constant weights every class gets the same logit for most nets, so their softmax is uniform
 * (1e-3 each; the table's 'ref range' shows it): for those the comparison checks shapes, finiteness
 * and the uniform value, not per-class discrimination.
 * VGG-19 is the slowest (~3 s build + ~4 s run here, plus onnxruntime); the suite stays well under 2 min.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildPlan, checkModel, inspectPlan, runPlan, type BuildSummary, type PlanInfo } from '../../libs/native/index.js';
import { seededFloats } from '../helpers/onnx-builder.js';
import { onnxruntimeOutputs, type OnnxruntimeJob } from '../helpers/onnxruntime.js';

/** dist/test/native → repository root. */
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const LIGHT_DIR = resolve(REPO_ROOT, '..', 'shared', 'onnx-conformance', 'light');

const MODELS = [
  'light_bvlc_alexnet',
  'light_densenet121',
  'light_inception_v1',
  'light_inception_v2',
  'light_resnet50',
  'light_shufflenet',
  'light_squeezenet',
  'light_vgg19',
  'light_zfnet512',
];

/**
 * max|plan - onnxruntime| / max(1, max|onnxruntime|): the error relative to the output scale, floored
 * at 1 so that near-zero outputs are held to an absolute bound. FP32 with a different summation order
 * (fused, folded BatchNorm) drifts by ~1e-6 relative per layer; 1e-3 leaves room for deep nets
 * (DenseNet-121: 121 layers) while still catching any wrong kernel, fusion or fold.
 */
const TOLERANCE = 1e-3;

const haveData = MODELS.every((m) => existsSync(join(LIGHT_DIR, `${m}.onnx`)));
if (!haveData) {
  const present = existsSync(LIGHT_DIR) ? readdirSync(LIGHT_DIR).filter((f) => f.endsWith('.onnx')).join(', ') || 'none' : 'no folder';
  console.warn(`light CNNs: skipped, the nine light CNN models are not all at ${LIGHT_DIR} (found: ${present})`);
}
const describeIfData = haveData ? describe : describe.skip;

interface ModelRun {
  model: string;
  summary: BuildSummary;
  info: PlanInfo;
  buildMs: number;
  runMs: number;
  /** Plan output (first output) and onnxruntime's. */
  got: { shape: number[]; data: Float32Array };
  want: { dims: number[]; data: number[] } | { error: string };
  maxError: number;
  scaledError: number;
  /** Smallest and largest onnxruntime output value: how much the comparison can tell apart. */
  refRange: [number, number];
}

const changesOf = (s: BuildSummary, id: string) => s.passes.find((p) => p.id === id)?.changes ?? [];
/** Nodes the importer removed before the first pass: materialized ConstantOfShape weights. */
const foldedAtImport = (s: BuildSummary) => s.nodesBefore - (s.passes[0]?.nodesBefore ?? s.nodesBefore);

describeIfData('default optimizer pipeline on the light CNNs vs onnxruntime (FP32, sm_90)', () => {
  const runs = new Map<string, ModelRun>();
  let workDir = '';

  beforeAll(async () => {
    workDir = mkdtempSync(join(tmpdir(), 'pf-light-cnns-'));
    const jobs: OnnxruntimeJob[] = [];
    const partial: Omit<ModelRun, 'want' | 'maxError' | 'scaledError' | 'refRange'>[] = [];
    for (const [index, model] of MODELS.entries()) {
      const modelPath = join(LIGHT_DIR, `${model}.onnx`);
      const check = await checkModel(modelPath);
      if (check.inputs.length !== 1) throw new Error(`${model}: expected one graph input, got ${check.inputs.length}`);
      const input = check.inputs[0];
      const shape = input.shape;
      if (!shape || !shape.every((d): d is number => typeof d === 'number')) {
        throw new Error(`${model}: input '${input.name}' has no fixed shape (${JSON.stringify(shape)})`);
      }
      const x = seededFloats(shape.reduce((a, b) => a * b, 1), 4242 + index);
      const planPath = join(workDir, `${model}.plan`);
      let t = performance.now();
      const summary = await buildPlan({ modelPath, outputPath: planPath, target: 'sm_90', precision: 'fp32' });
      const buildMs = performance.now() - t;
      const info = await inspectPlan(planPath);
      t = performance.now();
      const out = await runPlan(planPath, { [input.name]: { dtype: 'float32', shape, data: x } });
      const runMs = performance.now() - t;
      const first = out[check.outputs[0].name];
      if (!first) throw new Error(`${model}: plan output '${check.outputs[0].name}' missing (got ${Object.keys(out).join(', ')})`);
      partial.push({ model, summary, info, buildMs, runMs, got: { shape: first.shape, data: first.data as Float32Array } });
      jobs.push({ model: modelPath, feeds: [{ name: input.name, type: 'float32', dims: shape, data: Array.from(x) }] });
    }
    const oracle = onnxruntimeOutputs(jobs);
    partial.forEach((p, i) => {
      const res = oracle[i];
      let want: ModelRun['want'];
      let maxError = NaN;
      let scaledError = NaN;
      let refRange: [number, number] = [NaN, NaN];
      if ('error' in res) {
        want = res;
      } else {
        want = res.outputs[0];
        let refMax = 0;
        maxError = 0;
        for (let k = 0; k < want.data.length; k++) {
          refMax = Math.max(refMax, Math.abs(want.data[k]));
          maxError = Math.max(maxError, Math.abs(p.got.data[k] - want.data[k]));
        }
        scaledError = maxError / Math.max(1, refMax);
        refRange = [Math.min(...want.data), Math.max(...want.data)];
      }
      runs.set(p.model, { ...p, want, maxError, scaledError, refRange });
    });

    const rows = [...runs.values()].map((r) => [
      r.model.replace(/^light_/, ''),
      `${r.summary.nodesBefore} → ${r.summary.nodesAfter}`,
      String(changesOf(r.summary, 'fuse_conv_bias_activation').length + changesOf(r.summary, 'fuse_gemm_bias_activation').length),
      String(foldedAtImport(r.summary) + changesOf(r.summary, 'fold_constants').length),
      String(changesOf(r.summary, 'fold_conv_batchnorm').length),
      r.maxError.toExponential(2),
      `${r.refRange[0].toPrecision(3)}..${r.refRange[1].toPrecision(3)}`,
      r.buildMs.toFixed(0),
      r.runMs.toFixed(0),
    ]);
    const header = ['model', 'nodes', 'fused', 'folded', 'bn folded', 'max err', 'ref range', 'build ms', 'run ms'];
    const widths = header.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c].length)));
    const line = (cells: string[]) => cells.map((cell, c) => cell.padEnd(widths[c])).join('  ');
    console.log(['light CNNs, default pipeline, FP32 sm_90 (runPlan vs onnxruntime):', line(header), ...rows.map(line)].join('\n'));
  }, 300_000);

  afterAll(() => {
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });

  describe.each(MODELS)('%s', (model) => {
    const run = () => {
      const r = runs.get(model);
      if (!r) throw new Error(`${model}: not built (see beforeAll)`);
      return r;
    };

    test('plan output matches onnxruntime on the original model', () => {
      const r = run();
      if ('error' in r.want) throw new Error(`${model}: onnxruntime failed: ${r.want.error}`);
      expect(r.got.shape).toEqual(r.want.dims);
      expect(r.got.data.length).toBe(r.want.data.length);
      expect(r.got.data.every((v) => Number.isFinite(v))).toBe(true);
      expect(r.scaledError).toBeLessThanOrEqual(TOLERANCE);
    });

    test('constant weights are folded and Conv + activation fused', () => {
      const { summary, info } = run();
      // ConstantOfShape weights: materialized at import, or by fold_constants if the importer left any.
      expect(foldedAtImport(summary) + changesOf(summary, 'fold_constants').length).toBeGreaterThan(0);
      expect(info.layers.map((l) => l.op)).not.toContain('ConstantOfShape');
      // Every one of these nets has Conv followed by Relu.
      const fused = changesOf(summary, 'fuse_conv_bias_activation');
      expect(fused.length).toBeGreaterThan(0);
      expect(fused.join('\n')).toMatch(/Relu/);
      expect(info.layers.some((l) => l.op === 'FusedConv')).toBe(true);
      expect(summary.nodesAfter).toBeLessThan(summary.nodesBefore);
      expect(summary.layers).toBe(info.layers.length);
    });
  });

  test('BatchNormalization nets fold their BatchNorms into the convolutions', () => {
    for (const model of ['light_densenet121', 'light_inception_v2', 'light_resnet50', 'light_shufflenet']) {
      const r = runs.get(model);
      expect(r).toBeDefined();
      expect(changesOf(r!.summary, 'fold_conv_batchnorm').length).toBeGreaterThan(0);
    }
  });
});
