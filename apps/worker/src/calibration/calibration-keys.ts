/** S3 keys of calibration uploads: content-addressed and immutable, like models and plans. */
export function calibrationArchiveKey(sha256: string): string {
  return `calibration/${sha256}.npz`;
}

export function calibrationTableKey(sha256: string): string {
  return `calibration/${sha256}.json`;
}

/** True when some layer of a build with this precision setup runs INT8 and so needs calibration ranges. */
export function needsCalibration(spec: { precision: string; layerPrecisions?: Record<string, string> }): boolean {
  return spec.precision === 'int8' || Object.values(spec.layerPrecisions ?? {}).includes('int8');
}
