export * from './shared-metrics.js';
