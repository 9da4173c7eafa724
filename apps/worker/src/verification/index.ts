export * from './tolerances.js';
export * from './verification-error.js';
export * from './plan-verifier.js';
export { OnnxReference } from './onnx-reference.js';
export { OutputComparison, type OutputMetrics } from './output-comparison.js';
export { SeededRandom } from './seeded-random.js';
export { randomInputs, verificationInputShapes } from './verification-inputs.js';
