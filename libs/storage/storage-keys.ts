import { StorageError } from './storage-error.js';

const SHA256_HEX = /^[0-9a-f]{64}$/;

function checkSha(sha256: string): string {
  if (!SHA256_HEX.test(sha256)) throw new StorageError('E_INVALID', `not a sha256 hex digest: "${sha256}"`);
  return sha256;
}

/** Content-addressed, immutable: the same model bytes always live at the same key. */
export function modelKey(sha256: string): string {
  return `models/${checkSha(sha256)}.onnx`;
}

/** Content-addressed, immutable: a plan is stored once however many versions share it. */
export function planKey(sha256: string): string {
  return `plans/${checkSha(sha256)}.plan`;
}
