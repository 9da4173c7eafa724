/** Typed-array view of a tensor's raw bytes by dtype; float16/bfloat16 stay raw 16-bit words. */
const VIEW_BY_DTYPE: Record<string, (b: ArrayBuffer) => ArrayBufferView> = {
  float32: (b) => new Float32Array(b),
  float64: (b) => new Float64Array(b),
  float16: (b) => new Uint16Array(b),
  bfloat16: (b) => new Uint16Array(b),
  int64: (b) => new BigInt64Array(b),
  uint64: (b) => new BigUint64Array(b),
  int32: (b) => new Int32Array(b),
  uint32: (b) => new Uint32Array(b),
  int16: (b) => new Int16Array(b),
  uint16: (b) => new Uint16Array(b),
  int8: (b) => new Int8Array(b),
  uint8: (b) => new Uint8Array(b),
  bool: (b) => new Uint8Array(b),
};

export function isKnownDtype(dtype: string): boolean {
  return Object.hasOwn(VIEW_BY_DTYPE, dtype);
}

/** The typed array over `buffer` for `dtype`, or undefined for a dtype planforge does not know. */
export function tensorView(dtype: string, buffer: ArrayBuffer): ArrayBufferView | undefined {
  return isKnownDtype(dtype) ? VIEW_BY_DTYPE[dtype](buffer) : undefined;
}
