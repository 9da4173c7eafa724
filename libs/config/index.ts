export * from './config-error.js';
export * from './app-config.js';
