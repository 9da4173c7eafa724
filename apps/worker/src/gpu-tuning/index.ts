export * from './gpu-plan-stage.js';
export * from './timing-cache-store.js';
