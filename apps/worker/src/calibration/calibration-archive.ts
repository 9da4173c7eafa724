import { mkdir, open, rm } from 'node:fs/promises';
import path from 'node:path';
import type { ValueInfo } from '../../../../libs/native/index.js';
import { CalibrationArchiveError } from './calibration-archive-error.js';
import { calibrationFileName, planCalibrationLayout, type CalibrationEntry, type CalibrationLayout } from './calibration-layout.js';
import { NPY_MAX_HEADER_BYTES, NpyError, npyHeaderBytes, parseNpyHeader } from './npy.js';
import { ZipArchive, type ZipEntryInfo } from './zip-archive.js';

export interface InspectCalibrationOptions {
  /** Spec profiles: a profile's opt batch sizes the calibration batches of a symbolic batch axis. */
  profiles?: Record<string, { opt: number[] }>;
  /** Refuse archives that would inflate to more than this (zip bombs). */
  maxUncompressedBytes?: number;
}

export interface InspectedCalibration {
  layout: CalibrationLayout;
  entries: number;
  uncompressedBytes: number;
}

/** Bytes read from each entry to parse its .npy header (NumPy writes 128 for ordinary shapes). */
const HEAD_BYTES = 4096;

async function readHeader(zip: ZipArchive, entry: ZipEntryInfo): Promise<CalibrationEntry> {
  let head = await zip.head(entry, HEAD_BYTES);
  try {
    return { name: entry.name, uncompressedSize: entry.uncompressedSize, header: parseNpyHeader(head) };
  } catch (err) {
    if (err instanceof NpyError && err.message === 'truncated .npy header' && entry.uncompressedSize > HEAD_BYTES) {
      head = await zip.head(entry, NPY_MAX_HEADER_BYTES);
      try {
        return { name: entry.name, uncompressedSize: entry.uncompressedSize, header: parseNpyHeader(head) };
      } catch (again) {
        err = again;
      }
    }
    throw new CalibrationArchiveError(`entry '${entry.name}': ${(err as Error).message}`);
  }
}

async function inspectOpen(zip: ZipArchive, inputs: readonly ValueInfo[], opts: InspectCalibrationOptions): Promise<InspectedCalibration> {
  const files = zip.entries.filter((e) => !e.name.endsWith('/'));
  const uncompressedBytes = files.reduce((sum, e) => sum + e.uncompressedSize, 0);
  if (opts.maxUncompressedBytes !== undefined && uncompressedBytes > opts.maxUncompressedBytes)
    throw new CalibrationArchiveError(`the archive inflates to ${uncompressedBytes} bytes, more than the limit of ${opts.maxUncompressedBytes}`);
  const entries: CalibrationEntry[] = [];
  for (const e of files) {
    // Names first: an entry that names no input is refused before anything is inflated.
    if (!e.name.endsWith('.npy')) throw new CalibrationArchiveError(`entry '${e.name}' is not a .npy file (expected <input>.npy or <input>/<k>.npy)`);
  }
  for (const e of files) entries.push(await readHeader(zip, e));
  const layout = planCalibrationLayout(entries, inputs, opts.profiles);
  return { layout, entries: files.length, uncompressedBytes };
}

/**
 * Validates a calibration archive without extracting it: a zip of .npy entries whose names,
 * dtypes and shapes fit the model's inputs (calibration-layout.ts). Only the central directory
 * and each entry's header are read. Throws CalibrationArchiveError naming the problem.
 */
export async function inspectCalibrationArchive(
  archivePath: string,
  inputs: readonly ValueInfo[],
  opts: InspectCalibrationOptions = {},
): Promise<InspectedCalibration> {
  const zip = await ZipArchive.open(archivePath);
  try {
    return await inspectOpen(zip, inputs, opts);
  } finally {
    zip.close();
  }
}

export interface ExtractedCalibration {
  /** The native calibrator's folder: dataDir/<batch>/<input>.npy. */
  dataDir: string;
  batches: number;
  samples: number;
  layout: CalibrationLayout['layout'];
}

/** Copies `length` bytes at `start` of `from` to the end of `to`. */
async function copyRange(from: Awaited<ReturnType<typeof open>>, to: Awaited<ReturnType<typeof open>>, start: number, length: number, buf: Buffer): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await from.read(buf, 0, Math.min(buf.length, length - done), start + done);
    if (bytesRead === 0) throw new CalibrationArchiveError(`calibration data ended early (${done} of ${length} bytes)`);
    await to.write(buf, 0, bytesRead);
    done += bytesRead;
  }
}

/**
 * Extracts a calibration archive into the layout the native calibrator reads
 * (destDir/data/b<NNNNNN>/<input>.npy). Entries are inflated to destDir/raw under generated
 * names (archive names never become paths), cut into batch files, then removed.
 */
export async function extractCalibrationArchive(
  archivePath: string,
  destDir: string,
  inputs: readonly ValueInfo[],
  opts: InspectCalibrationOptions = {},
): Promise<ExtractedCalibration> {
  const zip = await ZipArchive.open(archivePath);
  const rawDir = path.join(destDir, 'raw');
  const dataDir = path.join(destDir, 'data');
  try {
    const { layout } = await inspectOpen(zip, inputs, opts);
    await mkdir(rawDir, { recursive: true });
    const rawPath = new Map<string, string>();
    const used = new Set(layout.batches.flatMap((b) => Object.values(b).map((s) => s.entry)));
    for (const entry of zip.entries) {
      if (!used.has(entry.name)) continue;
      const file = path.join(rawDir, `${rawPath.size}.npy`);
      await zip.extractTo(entry, file);
      rawPath.set(entry.name, file);
    }
    const width = Math.max(6, String(layout.batches.length - 1).length);
    const buf = Buffer.allocUnsafe(1 << 20);
    const handles = new Map<string, Awaited<ReturnType<typeof open>>>();
    try {
      for (const [entry, file] of rawPath) handles.set(entry, await open(file, 'r'));
      for (const [i, batch] of layout.batches.entries()) {
        const dir = path.join(dataDir, `b${String(i).padStart(width, '0')}`);
        await mkdir(dir, { recursive: true });
        for (const [input, slice] of Object.entries(batch)) {
          const out = await open(path.join(dir, calibrationFileName(input)), 'wx');
          try {
            await out.write(npyHeaderBytes(slice.descr, slice.shape));
            await copyRange(handles.get(slice.entry)!, out, slice.dataStart, slice.dataBytes, buf);
          } finally {
            await out.close();
          }
        }
      }
    } finally {
      for (const h of handles.values()) await h.close().catch(() => undefined);
    }
    return { dataDir, batches: layout.batches.length, samples: layout.samples, layout: layout.layout };
  } finally {
    zip.close();
    await rm(rawDir, { recursive: true, force: true });
  }
}
