/**
 * A plan that does not match its ONNX model within tolerance, or that could not be checked.
 * Deterministic (same model, spec and seed give the same numbers): never retried.
 */
export class VerificationError extends Error {
  readonly code = 'E_VERIFICATION';
  readonly permanent = true;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'VerificationError';
  }
}
