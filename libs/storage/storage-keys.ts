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

const TIMING_CACHE_PART = /^[A-Za-z0-9._-]{1,128}$/;

function checkPart(what: string, value: string): string {
  if (!TIMING_CACHE_PART.test(value) || value === '.' || value === '..') throw new StorageError('E_INVALID', `${what} "${value.slice(0, 64)}" must be 1-128 of [A-Za-z0-9._-]`);
  return value;
}

/**
 * Autotuning measurements shared by the workers of one optimizer version and SM: each
 * worker publishes its own file (no lost updates between workers), readers merge them all
 * (the merge is commutative and idempotent).
 */
export function timingCachePrefix(optimizerVersion: string, target: string): string {
  return `timing-cache/${checkPart('optimizer version', optimizerVersion)}/${checkPart('target', target)}/`;
}

export function timingCacheKey(optimizerVersion: string, target: string, workerId: string): string {
  return `${timingCachePrefix(optimizerVersion, target)}${checkPart('worker id', workerId)}.tsv`;
}
