export type RegistryErrorCode = 'E_NOT_FOUND' | 'E_INVALID';

/** A registry call that cannot be satisfied as asked (unknown id, malformed input). */
export class RegistryError extends Error {
  constructor(
    readonly code: RegistryErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'RegistryError';
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Ids come from URLs and job data: check their shape before Postgres rejects them with a cast error. */
export function isUuid(value: unknown): value is string {
  return typeof value === 'string' && UUID.test(value);
}

export const SHA256_HEX = /^[0-9a-f]{64}$/;
