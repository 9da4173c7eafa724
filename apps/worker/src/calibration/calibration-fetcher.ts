import { randomUUID } from 'node:crypto';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { TargetJobData } from '../../../../libs/contracts/index.js';
import type { CalibrationOptions, ValueInfo } from '../../../../libs/native/index.js';
import type { ObjectStorage } from '../../../../libs/storage/index.js';
import { extractCalibrationArchive } from './calibration-archive.js';
import { needsCalibration } from './calibration-keys.js';

/** Job folders older than this belong to a crashed process (a build never takes a day to calibrate). */
const STALE_AFTER_MS = 24 * 3600_000;

export interface PreparedCalibration {
  /** For buildPlan({calibration}). */
  options: CalibrationOptions;
  /** Batches and samples extracted from the archive (none when only a table came). */
  batches: number;
  samples: number;
  /** Removes the job's calibration folder. Idempotent. */
  dispose(): Promise<void>;
}

/**
 * Brings a build's calibration data to this machine: the archive from S3 (sha256 checked),
 * extracted into the layout the native calibrator reads (WORK_DIR/calibration/<job>/data), and
 * the calibration table, when one was uploaded, as the optimizer's cache file (read instead of
 * calibrating). One folder per job, removed when the job ends.
 */
export class CalibrationFetcher {
  private readonly root: string;
  private staleSwept = false;

  constructor(
    private readonly storage: ObjectStorage,
    workDir: string,
  ) {
    this.root = path.join(workDir, 'calibration');
  }

  /** Undefined when the build needs no calibration or brought no data (the optimizer then fails INT8 with E_CALIBRATION). */
  async prepare(data: TargetJobData, modelInputs: readonly ValueInfo[]): Promise<PreparedCalibration | undefined> {
    if (!needsCalibration(data.spec) || (!data.calibrationKey && !data.calibrationTableKey)) return undefined;
    await this.sweepStale();
    const dir = path.join(this.root, `${data.buildId}-${data.target}-${randomUUID().slice(0, 8)}`);
    await mkdir(dir, { recursive: true });
    const dispose = () => rm(dir, { recursive: true, force: true });
    try {
      const options: CalibrationOptions = {
        method: data.spec.calibration?.method ?? 'entropy',
        ...(data.spec.calibration?.percentile !== undefined && { percentile: data.spec.calibration.percentile }),
      };
      let batches = 0;
      let samples = 0;
      if (data.calibrationTableKey) {
        const cacheFile = path.join(dir, 'table.json');
        await this.storage.downloadToFile(data.calibrationTableKey, cacheFile, { expectedSha256: data.calibrationTableSha256 });
        options.cacheFile = cacheFile;
      }
      if (data.calibrationKey) {
        const archive = path.join(dir, 'samples.npz');
        await this.storage.downloadToFile(data.calibrationKey, archive, { expectedSha256: data.calibrationSha256 });
        const extracted = await extractCalibrationArchive(archive, dir, modelInputs, { profiles: data.spec.profiles });
        await rm(archive, { force: true });
        options.dataDir = extracted.dataDir;
        batches = extracted.batches;
        samples = extracted.samples;
      }
      return { options, batches, samples, dispose };
    } catch (err) {
      await dispose();
      throw err;
    }
  }

  private async sweepStale(): Promise<void> {
    if (this.staleSwept) return;
    this.staleSwept = true;
    const now = Date.now();
    for (const name of await readdir(this.root).catch(() => [] as string[])) {
      const dir = path.join(this.root, name);
      const st = await stat(dir).catch(() => null);
      if (st && now - st.mtimeMs > STALE_AFTER_MS) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    }
  }
}
