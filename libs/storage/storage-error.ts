export type StorageErrorCode = 'E_NOT_FOUND' | 'E_SHA_MISMATCH' | 'E_INVALID' | 'E_CLOSED';

export class StorageError extends Error {
  constructor(
    readonly code: StorageErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StorageError';
  }
}
