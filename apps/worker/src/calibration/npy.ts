/**
 * NumPy .npy headers: enough to check a calibration sample against a model input and to
 * cut a batch [N, ...] into smaller batches without reading the data into memory.
 * Little-endian (or byte-order-free) C-order arrays only, as native/src/core/npy.cc reads.
 */

/** NumPy descr -> ONNX-style dtype name (libs/native ValueInfo.dtype). */
const DTYPE_BY_DESCR: Record<string, { dtype: string; itemSize: number }> = {
  '<f4': { dtype: 'float32', itemSize: 4 },
  '<f2': { dtype: 'float16', itemSize: 2 },
  '<f8': { dtype: 'float64', itemSize: 8 },
  '<i8': { dtype: 'int64', itemSize: 8 },
  '<i4': { dtype: 'int32', itemSize: 4 },
  '<i2': { dtype: 'int16', itemSize: 2 },
  '|i1': { dtype: 'int8', itemSize: 1 },
  '|u1': { dtype: 'uint8', itemSize: 1 },
  '|b1': { dtype: 'bool', itemSize: 1 },
  '<u2': { dtype: 'uint16', itemSize: 2 },
  '<u4': { dtype: 'uint32', itemSize: 4 },
  '<u8': { dtype: 'uint64', itemSize: 8 },
};

const MAGIC = Buffer.from('\x93NUMPY', 'latin1');
/** NumPy itself refuses headers past this size; so do we (the API reads only this much of an entry). */
export const NPY_MAX_HEADER_BYTES = 64 * 1024;

export class NpyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NpyError';
  }
}

export interface NpyHeader {
  /** Canonical descr ('<f4', '|u1' ...). */
  descr: string;
  /** ONNX-style dtype name ('float32', 'int64' ...). */
  dtype: string;
  itemSize: number;
  shape: number[];
  /** Offset of the first data byte. */
  dataOffset: number;
  /** prod(shape) * itemSize. */
  dataBytes: number;
}

function dictValue(header: string, key: string): string | undefined {
  const m = new RegExp(`['"]${key}['"]\\s*:\\s*('[^']*'|"[^"]*"|\\([^)]*\\)|True|False)`).exec(header);
  return m?.[1];
}

/** Parses the header at the start of `buf` (which must hold at least the whole header). */
export function parseNpyHeader(buf: Buffer): NpyHeader {
  if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC)) throw new NpyError('not a .npy file (no \\x93NUMPY magic)');
  const major = buf[6];
  let headerLen: number;
  let start: number;
  if (major === 1) {
    headerLen = buf.readUInt16LE(8);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (buf.length < 12) throw new NpyError('truncated .npy header');
    headerLen = buf.readUInt32LE(8);
    start = 12;
  } else throw new NpyError(`unsupported .npy format version ${major}`);
  if (start + headerLen > NPY_MAX_HEADER_BYTES) throw new NpyError(`.npy header of ${headerLen} bytes is too large`);
  if (buf.length < start + headerLen) throw new NpyError('truncated .npy header');
  const header = buf.subarray(start, start + headerLen).toString(major === 3 ? 'utf8' : 'latin1');

  let descr = dictValue(header, 'descr')?.slice(1, -1);
  if (!descr) throw new NpyError("the .npy header has no 'descr'");
  if (descr.length === 3 && descr[0] === '=') descr = `<${descr.slice(1)}`;
  if (descr === '<i1' || descr === '<u1' || descr === '<b1') descr = `|${descr.slice(1)}`;
  const type = DTYPE_BY_DESCR[descr];
  if (!type) throw new NpyError(`unsupported dtype '${descr}' (little-endian numeric types only)`);
  if (dictValue(header, 'fortran_order') !== 'False') throw new NpyError('Fortran-order arrays are not supported (save with numpy.ascontiguousarray)');
  const shapeText = dictValue(header, 'shape');
  if (!shapeText || !shapeText.startsWith('(')) throw new NpyError("the .npy header has no 'shape'");
  const shape = shapeText
    .slice(1, -1)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      if (!/^\d+$/.test(s)) throw new NpyError(`bad dimension '${s}' in the .npy shape`);
      return Number(s);
    });
  const elements = shape.reduce((a, b) => a * b, 1);
  const dataBytes = elements * type.itemSize;
  if (!Number.isSafeInteger(dataBytes)) throw new NpyError(`the .npy shape (${shape.join(', ')}) is too large`);
  return { descr, dtype: type.dtype, itemSize: type.itemSize, shape, dataOffset: start + headerLen, dataBytes };
}

/** A v1.0 header (v2.0 when it does not fit 64 KiB), padded so the data starts 64-byte aligned. */
export function npyHeaderBytes(descr: string, shape: readonly number[]): Buffer {
  const dims = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${dims}, }`;
  const v1 = dict.length + 11 < 65536;
  const prefix = v1 ? 10 : 12;
  const text = dict + ' '.repeat((64 - ((prefix + dict.length + 1) % 64)) % 64) + '\n';
  const out = Buffer.alloc(prefix + text.length);
  MAGIC.copy(out, 0);
  out[6] = v1 ? 1 : 2;
  out[7] = 0;
  if (v1) out.writeUInt16LE(text.length, 8);
  else out.writeUInt32LE(text.length, 8);
  out.write(text, prefix, 'latin1');
  return out;
}
