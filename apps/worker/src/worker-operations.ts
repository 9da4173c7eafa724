import type { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { FarmNames, Target } from '../../../libs/contracts/index.js';
import { OPTIMIZER_VERSION, type GpuDevice } from '../../../libs/native/index.js';
import type { ObjectStorage } from '../../../libs/storage/index.js';
import { CancelListener } from './cancel/cancel-listener.js';
import { BuildEventPublisher } from './events/build-event-publisher.js';
import { probeGpu } from './heartbeat/gpu-info.js';
import { WorkerHeartbeat } from './heartbeat/worker-heartbeat.js';
import { JobLogCapture } from './job-logs/job-log-capture.js';
import type { Logger } from './worker-logger.js';

export interface WorkerOperationsOptions {
  redis: Redis;
  farm: FarmNames;
  storage: ObjectStorage;
  workerId: string;
  targets: Target[];
  mode: 'cross' | 'gpu';
  log: Logger;
  heartbeatMs?: number;
  /** The GPU a gpu-mode worker found at boot (CUDA driver); nvidia-smi is asked otherwise. */
  gpuDevice?: GpuDevice | null;
}

/**
 * What a worker does besides building: live build events, per-target build
 * logs, cancellation of running jobs, and its heartbeat in the worker registry.
 */
export class WorkerOperations {
  readonly jobLogs: JobLogCapture;
  readonly events: BuildEventPublisher;
  private readonly cancels: CancelListener;
  private heartbeat?: WorkerHeartbeat;
  private gpu: Awaited<ReturnType<typeof probeGpu>> = null;
  private closing?: Promise<void>;

  constructor(private readonly opts: WorkerOperationsOptions) {
    this.jobLogs = new JobLogCapture(opts.storage, opts.workerId, opts.log);
    this.events = new BuildEventPublisher(opts.redis, opts.farm, opts.workerId, () => this.gpu, opts.log, (buildId, target, stage, percent) =>
      this.jobLogs.note(buildId, target, `stage ${stage} (${Math.round(percent)}%)`),
    );
    this.cancels = new CancelListener(opts.redis, opts.farm, this.events, opts.log);
  }

  attachTargetWorker(worker: Worker): void {
    this.events.attachTargetWorker(worker);
  }

  attachFinalizeWorker(worker: Worker): void {
    this.events.attachFinalizeWorker(worker);
  }

  /** Call once the queue workers run. */
  async start(): Promise<void> {
    // A cross-compiling worker has no GPU to describe; it shows as "cross".
    const device = this.opts.gpuDevice;
    if (this.opts.mode !== 'gpu') this.gpu = null;
    else if (device) {
      const smi = await probeGpu();
      this.gpu = {
        name: device.name,
        sm: device.sm,
        memoryMiB: Math.round(device.memoryBytes / 2 ** 20),
        // nvidia-smi knows the driver's own version; the CUDA driver API only the CUDA version it supports.
        driver: smi?.driver ?? `CUDA ${device.driverVersion}`,
      };
    } else this.gpu = await probeGpu();
    await this.cancels.start();
    this.heartbeat = new WorkerHeartbeat(
      this.opts.redis,
      {
        farm: this.opts.farm,
        workerId: this.opts.workerId,
        targets: this.opts.targets,
        mode: this.opts.mode,
        gpu: this.gpu,
        optimizerVersion: OPTIMIZER_VERSION,
        currentJobs: () => this.events.activeJobs().map((j) => `${j.buildId}/${j.target}`),
        intervalMs: this.opts.heartbeatMs,
      },
      this.opts.log,
    );
    await this.heartbeat.start();
  }

  /** After the queue workers closed. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.cancels.close();
      await this.heartbeat?.stop();
    })();
    return this.closing;
  }
}
