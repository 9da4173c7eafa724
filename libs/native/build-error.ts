/** Codes of the native optimizer (native/src/core/tensor.h ErrorCode) plus the wrapper's own. */
export const BUILD_ERROR_CODES = [
  'E_PARSE',
  'E_UNSUPPORTED_OP',
  'E_PROFILE',
  'E_INVALID_MODEL',
  'E_EXTERNAL_DATA',
  'E_SHAPE',
  'E_RESOURCE',
  'E_PLAN_FORMAT',
  'E_WRONG_SM',
  'E_CALIBRATION',
  'E_IO',
  /** No CUDA driver or no GPU: a problem of the machine, not of the model (another worker may succeed). */
  'E_NO_GPU',
  'E_CANCELLED',
  'E_INTERNAL',
  /** The wrapper rejected an argument before calling native code. */
  'E_INVALID_ARGUMENT',
  /** The addon could not be loaded (not built, wrong Node ABI). */
  'E_NATIVE_UNAVAILABLE',
] as const;
export type BuildErrorCode = (typeof BUILD_ERROR_CODES)[number];

/**
 * Codes that describe the model or the request: retrying the same build cannot succeed.
 * Environment problems (E_IO, E_NO_GPU, E_NATIVE_UNAVAILABLE, ...) are not here: a retry, possibly
 * on another worker, can.
 */
const PERMANENT: ReadonlySet<BuildErrorCode> = new Set<BuildErrorCode>([
  'E_PARSE',
  'E_UNSUPPORTED_OP',
  'E_PROFILE',
  'E_INVALID_MODEL',
  'E_EXTERNAL_DATA',
  'E_SHAPE',
  'E_RESOURCE',
  'E_PLAN_FORMAT',
  'E_WRONG_SM',
  'E_CALIBRATION',
  'E_INVALID_ARGUMENT',
]);

export function isBuildErrorCode(code: string): code is BuildErrorCode {
  return (BUILD_ERROR_CODES as readonly string[]).includes(code);
}

/** Any failure of the native optimizer, with a stable code. */
export class BuildError extends Error {
  constructor(
    readonly code: BuildErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'BuildError';
  }

  /** True when retrying the same inputs cannot help (bad model, bad profile...). */
  get permanent(): boolean {
    return PERMANENT.has(this.code);
  }

  /** Wraps an error rejected by the addon; created here so the stack shows the JS caller. */
  static fromNative(err: unknown): BuildError {
    if (err instanceof BuildError) return err;
    const e = err as { code?: unknown; message?: unknown } | null;
    const code = typeof e?.code === 'string' && (BUILD_ERROR_CODES as readonly string[]).includes(e.code) ? (e.code as BuildErrorCode) : 'E_INTERNAL';
    const message = typeof e?.message === 'string' ? e.message : String(err);
    // TypeError / RangeError from the binding's own argument checks.
    // (Checked by name: the addon's errors may come from another realm, e.g. under jest's VM.)
    const name = (err as { name?: unknown } | null)?.name;
    const isArgumentError = typeof e?.code !== 'string' && (name === 'TypeError' || name === 'RangeError');
    const finalCode = isArgumentError ? 'E_INVALID_ARGUMENT' : code;
    return new BuildError(finalCode, message, { cause: err });
  }
}
