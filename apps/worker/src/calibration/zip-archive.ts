import { createWriteStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import yauzl from 'yauzl';
import { CalibrationArchiveError } from './calibration-archive-error.js';

/** More entries than any sane calibration set (a sample per file, thousands of samples). */
export const MAX_ZIP_ENTRIES = 100_000;

export interface ZipEntryInfo {
  /** Validated relative name, '/'-separated. */
  name: string;
  uncompressedSize: number;
  compressedSize: number;
  /** The yauzl entry, for reading. */
  readonly raw: yauzl.Entry;
}

/**
 * Why an entry name would escape the extraction folder or be ambiguous across systems;
 * null when the name is a plain relative path. Checked on the raw bytes' decoding, before
 * anything is written: the worker extracts into its own folder and never trusts names.
 */
export function unsafeEntryName(name: string): string | null {
  if (name.length === 0) return 'an empty name';
  if (name.includes('\0')) return 'a NUL character';
  if (name.includes('\\')) return 'a backslash (use / to separate folders)';
  if (name.startsWith('/')) return 'an absolute path';
  if (/^[A-Za-z]:/.test(name)) return 'a drive letter';
  const segments = name.replace(/\/$/, '').split('/');
  if (segments.some((s) => s === '..')) return "a '..' segment (path traversal)";
  if (segments.some((s) => s === '.' || s === '')) return "an empty or '.' segment";
  return null;
}

/**
 * A zip archive read with yauzl: the central directory is listed once (names validated, no
 * encrypted entries, only stored/deflated data), entries are read on demand. close() is idempotent.
 */
export class ZipArchive {
  private closed = false;

  private constructor(
    private readonly zip: yauzl.ZipFile,
    readonly entries: ZipEntryInfo[],
  ) {}

  static async open(path: string, what = 'calibration'): Promise<ZipArchive> {
    let zip: yauzl.ZipFile;
    try {
      // decodeStrings false: yauzl would reject unsafe names with an error we could not tell apart; we check them ourselves.
      zip = await yauzl.openPromise(path, { lazyEntries: true, autoClose: false, decodeStrings: false, validateEntrySizes: true });
    } catch (err) {
      throw new CalibrationArchiveError(`not a zip archive (.npz): ${(err as Error).message}`);
    }
    try {
      if (zip.entryCount > MAX_ZIP_ENTRIES) throw new CalibrationArchiveError(`the archive has ${zip.entryCount} entries, more than ${MAX_ZIP_ENTRIES}`);
      const entries: ZipEntryInfo[] = [];
      for await (const entry of zip.eachEntry()) {
        const raw = entry.fileName as unknown as Buffer;
        const name = yauzl.getFileNameLowLevel(entry.generalPurposeBitFlag, raw, entry.extraFields, false);
        const unsafe = unsafeEntryName(name);
        if (unsafe) throw new CalibrationArchiveError(`entry ${JSON.stringify(name.slice(0, 200))} has ${unsafe}`);
        if (entry.isEncrypted()) throw new CalibrationArchiveError(`entry '${name}' is encrypted`);
        if (entry.compressionMethod !== 0 && entry.compressionMethod !== 8)
          throw new CalibrationArchiveError(`entry '${name}' uses compression method ${entry.compressionMethod}; only stored and deflate are supported`);
        entries.push({ name, uncompressedSize: entry.uncompressedSize, compressedSize: entry.compressedSize, raw: entry });
      }
      return new ZipArchive(zip, entries);
    } catch (err) {
      zip.close();
      if (err instanceof CalibrationArchiveError) throw err;
      throw new CalibrationArchiveError(`${what}: unreadable zip archive: ${(err as Error).message}`);
    }
  }

  private async stream(entry: ZipEntryInfo): Promise<Readable> {
    try {
      return await this.zip.openReadStreamPromise(entry.raw);
    } catch (err) {
      throw new CalibrationArchiveError(`entry '${entry.name}' cannot be read: ${(err as Error).message}`);
    }
  }

  /** The first `bytes` bytes of an entry (fewer when it is shorter); the rest is not inflated. */
  async head(entry: ZipEntryInfo, bytes: number): Promise<Buffer> {
    const stream = await this.stream(entry);
    const chunks: Buffer[] = [];
    let have = 0;
    try {
      for await (const chunk of stream) {
        chunks.push(chunk as Buffer);
        have += (chunk as Buffer).length;
        if (have >= bytes) break;
      }
    } catch (err) {
      throw new CalibrationArchiveError(`entry '${entry.name}' is corrupt: ${(err as Error).message}`);
    } finally {
      stream.destroy();
    }
    return Buffer.concat(chunks).subarray(0, bytes);
  }

  /** Writes an entry's data to a new file; yauzl checks that it inflates to the size the directory announces. */
  async extractTo(entry: ZipEntryInfo, filePath: string): Promise<void> {
    const stream = await this.stream(entry);
    try {
      await pipeline(stream, createWriteStream(filePath, { flags: 'wx' }));
    } catch (err) {
      if (typeof (err as { syscall?: unknown }).syscall === 'string') throw err;
      throw new CalibrationArchiveError(`entry '${entry.name}' is corrupt: ${(err as Error).message}`);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.zip.close();
  }
}
