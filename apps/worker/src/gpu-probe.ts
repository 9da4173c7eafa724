import { existsSync, readdirSync } from 'node:fs';

/**
 * Whether the NVIDIA kernel driver sees at least one GPU. Only a presence check:
 * matching the GPU's SM to the served targets comes with on-device tuning.
 */
export function nvidiaGpuPresent(): boolean {
  try {
    if (readdirSync('/proc/driver/nvidia/gpus').length > 0) return true;
  } catch {
    // No driver procfs: fall through to the device node.
  }
  return existsSync('/dev/nvidia0');
}
