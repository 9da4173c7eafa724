import { readFile, stat } from 'node:fs/promises';
import { CalibrationArchiveError } from './calibration-archive-error.js';

/** A calibration table is a few bytes per activation: anything larger is not one. */
export const MAX_CALIBRATION_TABLE_BYTES = 16 * 1024 * 1024;

export interface CalibrationTableInfo {
  method: string;
  tensors: number;
}

/**
 * Checks a calibration table as the native optimizer writes it (`planforge-opt build
 * --calib-cache FILE.json`, calibrator.h): {"format":"planforge-calibration","version":1,
 * "method":..., "tensors":{"<name>":{"amax":..,"scale":..}}}. The optimizer reads it instead of
 * calibrating; tensors it lacks fail that build with E_CALIBRATION.
 */
export async function checkCalibrationTable(filePath: string): Promise<CalibrationTableInfo> {
  const fail = (message: string): never => {
    throw new CalibrationArchiveError(message, 'calibrationTable');
  };
  const { size } = await stat(filePath);
  if (size > MAX_CALIBRATION_TABLE_BYTES) fail(`larger than ${MAX_CALIBRATION_TABLE_BYTES} bytes`);
  let doc: unknown;
  try {
    doc = JSON.parse(await readFile(filePath, 'utf8'));
  } catch (err) {
    fail(`not valid JSON: ${(err as Error).message}`);
  }
  const t = doc as { format?: unknown; version?: unknown; method?: unknown; tensors?: unknown } | null;
  if (!t || typeof t !== 'object' || Array.isArray(t)) fail('expected a JSON object');
  if (t!.format !== 'planforge-calibration') fail('"format" must be "planforge-calibration" (a table written by planforge-opt --calib-cache)');
  if (t!.version !== 1) fail(`unsupported "version" ${JSON.stringify(t!.version)} (expected 1)`);
  if (typeof t!.method !== 'string' || !t!.method) fail('"method" must be a non-empty string');
  const tensors = t!.tensors;
  if (!tensors || typeof tensors !== 'object' || Array.isArray(tensors)) fail('"tensors" must be an object of {amax, scale} by tensor name');
  for (const [name, v] of Object.entries(tensors as Record<string, unknown>)) {
    const amax = (v as { amax?: unknown } | null)?.amax;
    if (typeof amax !== 'number' || !Number.isFinite(amax) || amax < 0) fail(`tensors.${name}.amax must be a finite number >= 0`);
  }
  return { method: t!.method as string, tensors: Object.keys(tensors as object).length };
}
