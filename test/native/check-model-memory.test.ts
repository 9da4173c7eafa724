/**
 * checkModel (the API's upload check) on a large model: the native check walks the file as a
 * stream and leaves large initializer payloads unread (native/src/core/onnx_lazy_reader.cc), so
 * its peak memory stays flat however large the weights are, while the verdict is the one the
 * whole-file import gives (native/test/inspect_import_test.cc compares the two on every model).
 * Each check runs in a fresh node process that reports its peak RSS (VmHWM) before and after.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { makeModel } from '../helpers/onnx-builder.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const NATIVE_INDEX = pathToFileURL(join(REPO_ROOT, 'dist', 'libs', 'native', 'index.js')).href;
const MIB = 1024 * 1024;
const K = 1024;
const M = 65536; // W: float32[1024, 65536] = 256 MiB of raw_data
const BIG_BYTES = K * M * 4;
const MAX_GROWTH = 64 * MIB;

function varint(n: number): Buffer {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return Buffer.from(out);
}
const tag = (field: number, wire: number) => varint(field * 8 + wire);
const lenField = (field: number, payload: Buffer) => Buffer.concat([tag(field, 2), varint(payload.length), payload]);

/** x[1,1024] -> MatMul(W) -> Reshape(shape = [-1, 256]) -> y; W is added by writeLargeModel. */
function smallPart(): Buffer {
  return makeModel({
    inputs: [{ name: 'x', shape: [1, K] }],
    outputs: [{ name: 'y', shape: null }],
    initializers: [{ name: 'shape', dtype: 'int64', dims: [2], data: [-1, 256] }],
    nodes: [
      { op: 'MatMul', name: 'mm', inputs: ['x', 'W'], outputs: ['h'] },
      { op: 'Reshape', name: 'reshape', inputs: ['h', 'shape'], outputs: ['y'] },
    ],
    graphName: 'large',
  });
}

/**
 * Writes the model, then a second ModelProto.graph field holding the initializer W (float32
 * `dims`, `rawBytes` bytes of raw_data) in 8 MiB chunks, never one large Buffer; protobuf merges
 * the two graph fields. `stopAt` truncates the file at that size.
 */
function writeLargeModel(path: string, dims: number[], rawBytes: number, stopAt = Infinity): number {
  const header = Buffer.concat([...dims.map((d) => Buffer.concat([tag(1, 0), varint(d)])), tag(2, 0), varint(1), lenField(8, Buffer.from('W'))]);
  const rawPrefix = Buffer.concat([tag(9, 2), varint(rawBytes)]);
  const tensorLength = header.length + rawPrefix.length + rawBytes;
  const initPrefix = Buffer.concat([tag(5, 2), varint(tensorLength)]);
  const graphLength = initPrefix.length + tensorLength;
  const head = Buffer.concat([smallPart(), tag(7, 2), varint(graphLength), initPrefix, header, rawPrefix]);
  const fd = openSync(path, 'w');
  let written = 0;
  const put = (b: Buffer) => {
    const n = Math.min(b.length, stopAt - written);
    if (n > 0) writeSync(fd, b, 0, n);
    written += Math.max(n, 0);
  };
  try {
    put(head);
    const chunk = Buffer.alloc(8 * MIB);
    for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 31) & 0xff;
    for (let left = rawBytes; left > 0 && written < stopAt; left -= chunk.length) put(chunk.subarray(0, Math.min(left, chunk.length)));
  } finally {
    closeSync(fd);
  }
  return written;
}

interface ChildResult {
  ok: boolean;
  info?: Record<string, unknown>;
  code?: string;
  message?: string;
  hwmBefore: number;
  hwmAfter: number;
}

/** checkModel(path) in a fresh node process (after a warm-up check of a tiny model), with its peak RSS. */
function checkInChild(path: string, warmup: string): ChildResult {
  const script = `
    import { readFileSync } from 'node:fs';
    const [index, model, warm] = process.argv.slice(1);
    const hwm = () => Number(/VmHWM:\\s+(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
    const { checkModel } = await import(index);
    await checkModel(warm);
    const before = hwm();
    let out;
    try {
      out = { ok: true, info: await checkModel(model) };
    } catch (e) {
      out = { ok: false, code: e.code, message: e.message };
    }
    process.stdout.write(JSON.stringify({ ...out, hwmBefore: before, hwmAfter: hwm() }));`;
  // Without PLANFORGE_VERIFY_STREAMING_CHECK: that debug switch also runs the whole-file import.
  const env = { ...process.env };
  delete env.PLANFORGE_VERIFY_STREAMING_CHECK;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, NATIVE_INDEX, path, warmup], { encoding: 'utf8', env });
  if (r.status !== 0) throw new Error(`checkModel child failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as ChildResult;
}

function sha256OfFile(path: string): string {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  const buf = Buffer.alloc(8 * MIB);
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n <= 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

let dir: string;
let warmup: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'pf-check-memory-'));
  warmup = join(dir, 'warmup.onnx');
  writeLargeModel(warmup, [K, 256], K * 256 * 4);
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('checkModel on a model with a 256 MiB initializer', () => {
  it('reports inputs, outputs and ops as for any model, with peak RSS growth far below the model size', () => {
    const path = join(dir, 'large.onnx');
    const size = writeLargeModel(path, [K, M], BIG_BYTES);
    expect(size).toBeGreaterThan(BIG_BYTES);
    const r = checkInChild(path, warmup);
    expect(r).toMatchObject({ ok: true });
    expect(r.info).toEqual({
      irVersion: 8,
      opsetVersion: 13,
      producerName: 'planforge-test',
      producerVersion: '0.1.0',
      graphName: 'large',
      inputs: [{ name: 'x', dtype: 'float32', shape: [1, K] }],
      // Reshape's shape initializer is small: its values are read, so y's shape is inferred.
      outputs: [{ name: 'y', dtype: 'float32', shape: [M / 256, 256] }],
      nodeCount: 2,
      initializerCount: 2,
      opTypes: ['MatMul', 'Reshape'],
      supported: true,
      unsupportedOps: '',
      modelSha256: sha256OfFile(path),
    });
    const growth = r.hwmAfter - r.hwmBefore;
    process.stderr.write(`checkModel of a ${(size / MIB).toFixed(0)} MiB model: peak RSS ${(r.hwmBefore / MIB).toFixed(0)} -> ${(r.hwmAfter / MIB).toFixed(0)} MiB\n`);
    expect(growth).toBeLessThan(MAX_GROWTH);
  });

  it('rejects the model truncated in the middle of the large payload with E_PARSE, in bounded memory', () => {
    const path = join(dir, 'truncated.onnx');
    const size = writeLargeModel(path, [K, M], BIG_BYTES, 100 * MIB + 12345);
    const r = checkInChild(path, warmup);
    expect(r).toMatchObject({
      ok: false,
      code: 'E_PARSE',
      message: `not a valid ONNX model: protobuf parsing stopped at byte ${size} of ${size} (the data is truncated, corrupted or not a protobuf message)`,
    });
    expect(r.hwmAfter - r.hwmBefore).toBeLessThan(MAX_GROWTH);
  });

  it('still checks the payload length against the declared shape (E_INVALID_MODEL), in bounded memory', () => {
    const path = join(dir, 'short.onnx');
    writeLargeModel(path, [K, M + 1], BIG_BYTES);
    const r = checkInChild(path, warmup);
    expect(r).toMatchObject({
      ok: false,
      code: 'E_INVALID_MODEL',
      message: `tensor 'W' has ${BIG_BYTES} bytes of raw data, its shape ${K}x${M + 1} needs ${K * (M + 1) * 4}`,
    });
    expect(r.hwmAfter - r.hwmBefore).toBeLessThan(MAX_GROWTH);
  });

  it('refuses a file made to cost memory outside tensors (a field repeated 160 million times) with E_RESOURCE, in bounded memory', () => {
    // 0x08 0x08 ...: ModelProto.ir_version = 8, over and over; a valid protobuf message with no tensor in it.
    const path = join(dir, 'repeated-field.onnx');
    const fd = openSync(path, 'w');
    try {
      const chunk = Buffer.alloc(8 * MIB, 0x08);
      for (let i = 0; i < 40; i++) writeSync(fd, chunk);
    } finally {
      closeSync(fd);
    }
    const r = checkInChild(path, warmup);
    expect(r).toMatchObject({ ok: false, code: 'E_RESOURCE', message: expect.stringMatching(/without its large tensor payloads is over 128 MiB/) });
    expect(r.hwmAfter - r.hwmBefore).toBeLessThan(4 * MAX_GROWTH);
  });
});
