export * from './build-error.js';
export * from './types.js';
export { OPTIMIZER_VERSION, buildPlan, checkModel, inspectPlan, runPlan, supportedOps } from './optimizer.js';
export { isKnownDtype, tensorView } from './tensor-views.js';
export { addonPath, optimizerCliPath } from './native-addon.js';
export * from './gpu-tools.js';
export { gpuAvailable, listDevices, type GpuAvailability, type GpuDevice } from './devices.js';
