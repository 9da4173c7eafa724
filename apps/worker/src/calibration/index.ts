export * from './calibration-archive-error.js';
export * from './calibration-archive.js';
export * from './calibration-layout.js';
export * from './calibration-table.js';
export * from './npy.js';
export { ZipArchive, unsafeEntryName, MAX_ZIP_ENTRIES } from './zip-archive.js';
export * from './calibration-keys.js';
export * from './calibration-fetcher.js';
