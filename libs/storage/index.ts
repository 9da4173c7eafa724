export * from './storage-error.js';
export * from './storage-keys.js';
export * from './sha256-meter.js';
export * from './object-storage.js';
