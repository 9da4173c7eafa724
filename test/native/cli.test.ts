/** planforge-opt, the optimizer CLI built from the same core as the binding. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildPlan, runPlan } from '../../libs/native/index.js';
import { makeModel, seededFloats, attr } from '../helpers/onnx-builder.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const CLI = join(REPO_ROOT, 'native', 'build', 'planforge-opt');

function cli(...args: string[]) {
  const r = spawnSync(CLI, args, { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Minimal .npy (v1.0) writer/reader for float32 C-order arrays. */
function npy(shape: number[], data: Float32Array): Buffer {
  const dims = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${dims}, }`;
  header += ' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64) + '\n';
  const pre = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, header.length & 0xff, header.length >> 8]);
  return Buffer.concat([pre, Buffer.from(header, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
}
function readNpy(path: string): { shape: number[]; data: Float32Array } {
  const b = readFileSync(path);
  const len = b.readUInt16LE(8);
  const header = b.subarray(10, 10 + len).toString('latin1');
  expect(header).toContain("'descr': '<f4'");
  const shape = /'shape': \(([^)]*)\)/.exec(header)![1].split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const body = b.subarray(10 + len);
  return { shape, data: new Float32Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength)) };
}

let dir: string;
let model: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'pf-cli-'));
  model = join(dir, 'model.onnx');
  writeFileSync(
    model,
    makeModel({
      inputs: [{ name: 'input:0', shape: ['n', 4] }],
      outputs: [{ name: 'out/probs', shape: ['n', 3] }],
      initializers: [
        { name: 'w', dims: [4, 3], data: seededFloats(12, 5) },
        { name: 'b', dims: [3], data: seededFloats(3, 6) },
      ],
      nodes: [
        { op: 'Gemm', name: 'fc', inputs: ['input:0', 'w', 'b'], outputs: ['h'], attrs: { alpha: attr.float(1) } },
        { op: 'Softmax', name: 'softmax', inputs: ['h'], outputs: ['out/probs'], attrs: { axis: 1 } },
      ],
    }),
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('planforge-opt', () => {
  it('check --json describes the model', () => {
    const r = cli('check', model, '--json');
    expect(r.status).toBe(0);
    const info = JSON.parse(r.stdout);
    expect(info.inputs).toEqual([{ name: 'input:0', dtype: 'float32', shape: ['n', 4] }]);
    expect(info.opTypes).toEqual(['Gemm', 'Softmax']);
  });

  it('build -> inspect -> run, with outputs equal to the binding', async () => {
    const plan = join(dir, 'model.plan');
    const b = cli('build', model, '--target', 'sm_87', '--precision', 'fp32', '--profile', 'input:0:min=1x4,opt=2x4,max=8x4', '-o', plan, '--json');
    expect(b.stderr).toBe('');
    expect(b.status).toBe(0);
    const summary = JSON.parse(b.stdout);
    expect(summary.header.sm).toBe('sm_87');
    expect(summary.layers).toBe(2);

    const i = cli('inspect', plan, '--json');
    expect(i.status).toBe(0);
    expect(JSON.parse(i.stdout).profiles).toEqual({ 'input:0': { min: [1, 4], opt: [2, 4], max: [8, 4] } });
    const text = cli('inspect', plan);
    expect(text.stdout).toContain('target sm_87, precision fp32');

    const x = seededFloats(8, 77);
    writeFileSync(join(dir, 'x.npy'), npy([2, 4], x));
    const outDir = join(dir, 'out');
    const r = cli('run', plan, '--input', `input:0=${join(dir, 'x.npy')}`, '--output-dir', outDir);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const outFile = join(outDir, 'out_probs.npy'); // sanitized output name
    expect(existsSync(outFile)).toBe(true);
    const got = readNpy(outFile);
    expect(got.shape).toEqual([2, 3]);
    const viaBinding = await runPlan(plan, { 'input:0': { dtype: 'float32', shape: [2, 4], data: x } });
    expect(Array.from(got.data)).toEqual(Array.from(viaBinding['out/probs'].data as Float32Array));
    expect(got.data[0] + got.data[1] + got.data[2]).toBeCloseTo(1, 5);
  });

  it('writes the same plan bytes as the binding for the same options', async () => {
    const viaCli = join(dir, 'same-cli.plan');
    const viaBinding = join(dir, 'same-binding.plan');
    const args = ['build', model, '--target', 'sm_80', '--precision', 'fp16', '--spec-hash', 'abc', '--profile', 'input:0:min=1x4,opt=2x4,max=8x4'];
    expect(cli(...args, '-o', viaCli).status).toBe(0);
    await buildPlan({
      modelPath: model,
      outputPath: viaBinding,
      target: 'sm_80',
      precision: 'fp16',
      specHash: 'abc',
      profiles: { 'input:0': { min: [1, 4], opt: [2, 4], max: [8, 4] } },
    });
    expect(readFileSync(viaCli).equals(readFileSync(viaBinding))).toBe(true);
  });

  it('fails with one line "error E_CODE: message"', () => {
    const plan = join(dir, 'err.plan');
    const calib = cli('build', model, '--target', 'sm_90', '--precision', 'int8', '--calib', join(dir, 'no-such-dir'), '-o', plan);
    expect(calib.status).toBe(1);
    expect(calib.stderr).toMatch(/^error E_(CALIBRATION|IO): [^\n]*\n$/);
    expect(existsSync(plan)).toBe(false);

    const badProfile = cli('build', model, '--target', 'sm_90', '--profile', 'input:0:min=1x5,opt=1x5,max=1x5', '-o', plan);
    expect(badProfile.stderr).toMatch(/^error E_PROFILE: .*fixed to 4.*\n$/);

    const usage = cli('build', model, '--target', 'sm_75', '-o', plan);
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/^error E_USAGE: unknown --target 'sm_75'/);
    expect(cli('build', model, '--frobnicate').stderr).toMatch(/^error E_USAGE: unknown option --frobnicate/);

    const good = join(dir, 'good.plan');
    expect(cli('build', model, '--target', 'sm_90', '--profile', 'input:0:min=1x4,opt=1x4,max=2x4', '-o', good).status).toBe(0);
    writeFileSync(join(dir, 'big.npy'), npy([3, 4], new Float32Array(12)));
    const outside = cli('run', good, '--input', `input:0=${join(dir, 'big.npy')}`, '--output-dir', join(dir, 'o2'));
    expect(outside.status).toBe(1);
    expect(outside.stderr).toMatch(/^error E_PROFILE: input 'input:0' shape 3x4 is outside/);
    const wrongSm = cli('run', good, '--expected-sm', 'sm_80', '--input', `input:0=${join(dir, 'x.npy')}`, '--output-dir', join(dir, 'o3'));
    expect(wrongSm.stderr).toMatch(/^error E_WRONG_SM: plan was built for sm_90 but this device is sm_80\n$/);

    writeFileSync(join(dir, 'junk.onnx'), Buffer.from('definitely not protobuf'));
    expect(cli('check', join(dir, 'junk.onnx')).stderr).toMatch(/^error E_PARSE: /);
  });
});
