import { BuildError } from './build-error.js';
import { loadAddon } from './native-addon.js';

/** A CUDA device as the driver reports it. */
export interface GpuDevice {
  /** Driver ordinal (after CUDA_VISIBLE_DEVICES). */
  index: number;
  name: string;
  /** Compute capability as a target name: 'sm_90'. May be an SM the farm does not build for ('sm_89'). */
  sm: string;
  multiprocessors: number;
  memoryBytes: number;
  /** CUDA version the driver supports, '13.0'. */
  driverVersion: string;
}

export type GpuAvailability = { available: true; deviceCount: number } | { available: false; reason: string };

async function call<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw BuildError.fromNative(err);
  }
}

/**
 * The GPUs this process can use, through the CUDA driver (libcuda.so.1, opened at run time, off the
 * JS thread). [] when there is no driver or no device; gpuAvailable() says why.
 */
export function listDevices(): Promise<GpuDevice[]> {
  return call(() => loadAddon().listDevices());
}

/** Whether a CUDA GPU is usable here, with the reason when not ('no CUDA driver: libcuda.so.1 not found (...)'). */
export async function gpuAvailable(): Promise<GpuAvailability> {
  const r = await call(() => loadAddon().gpuAvailable());
  return r.available ? { available: true, deviceCount: r.deviceCount ?? 0 } : { available: false, reason: r.reason ?? 'no usable CUDA GPU' };
}
