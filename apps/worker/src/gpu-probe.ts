import { gpuAvailable, listDevices, type GpuDevice } from '../../../libs/native/index.js';

/** What a gpu-mode worker found at boot: its GPU, or why there is none. */
export type GpuProbe = { device: GpuDevice; reason?: undefined } | { device: null; reason: string };

/**
 * The GPU this worker process drives, asked of the CUDA driver through the native addon (off the
 * JS thread). One process per GPU: it takes the first device the driver exposes, so
 * CUDA_VISIBLE_DEVICES picks which one.
 */
export async function detectGpu(): Promise<GpuProbe> {
  const devices = await listDevices();
  if (devices.length > 0) return { device: devices[0] };
  const availability = await gpuAvailable();
  return { device: null, reason: availability.available ? 'the CUDA driver lists no device' : availability.reason };
}
