export * from './targets.js';
export * from './build-spec.js';
export * from './queues.js';
export * from './job-options.js';
export * from './operations.js';
