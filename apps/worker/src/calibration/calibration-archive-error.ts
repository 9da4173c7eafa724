/**
 * A calibration upload the farm cannot use (not a zip, unsafe entry names, entries that
 * do not match the model's inputs...). The API answers 400 naming `field`; the worker
 * fails the target with E_CALIBRATION (never retried: the archive will not change).
 */
export class CalibrationArchiveError extends Error {
  readonly code = 'E_CALIBRATION';
  /** Retrying cannot help: the same archive fails the same way. */
  readonly permanent = true;

  constructor(
    message: string,
    /** The multipart field at fault: 'calibration' or 'calibrationTable'. */
    readonly field: 'calibration' | 'calibrationTable' = 'calibration',
  ) {
    super(message);
    this.name = 'CalibrationArchiveError';
  }
}
