import type { BuildSpec } from '../../../../libs/contracts/index.js';
import type { ModelInfo } from '../../../../libs/native/index.js';
import {
  CalibrationArchiveError,
  checkCalibrationTable,
  inspectCalibrationArchive,
  needsCalibration,
} from '../../../worker/src/calibration/index.js';
import { ApiError } from '../errors/api.error.js';
import { CALIBRATION_FIELD, CALIBRATION_TABLE_FIELD } from './model-upload.service.js';

export interface CalibrationFile {
  path: string;
  size: number;
  sha256: string;
}

export interface CalibrationFiles {
  /** .npz of input samples (the "calibration" file part). */
  archive?: CalibrationFile;
  /** JSON calibration table (the "calibrationTable" file part). */
  table?: CalibrationFile;
}

/** An archive may inflate to this many times MAX_CALIBRATION_BYTES (npz data is often stored, rarely compresses > 4x). */
const MAX_INFLATION = 4;

/**
 * The calibration data a build will use: none unless some layer is INT8 (uploads for
 * other precisions are ignored); INT8 without an archive or a table is refused. Archives
 * are checked against the model's inputs (names, dtypes, shapes) when `info` is given.
 * Throws ApiError 400 naming the file part at fault.
 */
export async function checkCalibrationUpload(
  spec: BuildSpec,
  files: CalibrationFiles,
  info: ModelInfo | null,
  maxCalibrationBytes: number,
): Promise<CalibrationFiles> {
  if (!needsCalibration(spec)) return {};
  if (!files.archive && !files.table) {
    throw ApiError.invalidField(
      CALIBRATION_FIELD,
      `INT8 needs calibration data: send a .npz archive of input samples as the "${CALIBRATION_FIELD}" file part, or a calibration table (JSON) as "${CALIBRATION_TABLE_FIELD}"`,
    );
  }
  try {
    if (files.table) await checkCalibrationTable(files.table.path);
    if (files.archive && info) {
      await inspectCalibrationArchive(files.archive.path, info.inputs, {
        profiles: spec.profiles,
        maxUncompressedBytes: MAX_INFLATION * maxCalibrationBytes,
      });
    }
  } catch (err) {
    if (err instanceof CalibrationArchiveError) throw ApiError.invalidField(err.field, err.message);
    throw err;
  }
  return files;
}
