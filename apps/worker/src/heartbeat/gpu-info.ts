import { execFile } from 'node:child_process';
import type { WorkerInfo } from '../../../../libs/contracts/index.js';

/**
 * What nvidia-smi says about the first GPU: name, compute capability ("9.0"),
 * memory and driver. null when there is no nvidia-smi or it fails: a
 * cross-compiling worker shows as "cross".
 */
export function probeGpu(timeoutMs = 5_000): Promise<WorkerInfo['gpu']> {
  return new Promise((resolve) => {
    execFile(
      'nvidia-smi',
      ['--query-gpu=name,compute_cap,memory.total,driver_version', '--format=csv,noheader,nounits', '--id=0'],
      { timeout: timeoutMs },
      (err, stdout) => {
        if (err) return resolve(null);
        resolve(parseNvidiaSmi(String(stdout)));
      },
    );
  });
}

/** "NVIDIA H100 80GB HBM3, 9.0, 81559, 580.65.06" → fields (SM as sm_90). */
export function parseNvidiaSmi(line: string): WorkerInfo['gpu'] {
  const first = line.split('\n').find((l) => l.trim());
  if (!first) return null;
  const [name, cap, memory, driver] = first.split(',').map((s) => s.trim());
  if (!name) return null;
  const sm = /^(\d+)\.(\d+)$/.exec(cap ?? '');
  const mem = Number(memory);
  return {
    name,
    sm: sm ? `sm_${sm[1]}${sm[2]}` : null,
    memoryMiB: Number.isFinite(mem) && mem > 0 ? mem : null,
    driver: driver || null,
  };
}
