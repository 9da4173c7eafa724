export * from './start-worker.js';
export * from './target-job.processor.js';
export * from './finalize-job.processor.js';
export * from './job-router.js';
export * from './model-cache.js';
export * from './progress-reporter.js';
export * from './worker-start-error.js';
export * from './worker-logger.js';
