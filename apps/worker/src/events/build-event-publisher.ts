import { UnrecoverableError, type Job, type Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  buildEventsChannel,
  type BuildStateEvent,
  type FarmNames,
  type FinalizeJobData,
  type TargetEvent,
  type TargetJobData,
  type WorkerInfo,
} from '../../../../libs/contracts/index.js';
import type { FinalizeResult } from '../../../../libs/registry/index.js';
import { incrementCounter, observeDuration } from '../../../../libs/operations/index.js';
import type { TargetJobProgress } from '../progress-reporter.js';
import type { Logger } from '../worker-logger.js';

/** A job this process is running now. */
export interface ActiveJob {
  jobId: string;
  buildId: string;
  target: TargetJobData['target'];
  worker: Worker;
  attempt: number;
  startedAt: number;
  stage: string | null;
  stageSince: number;
}

/** E_CANCELLED errors, whatever wraps them (BuildError, UnrecoverableError message prefix). */
export function isCancellation(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  return e?.code === 'E_CANCELLED' || (typeof e?.message === 'string' && e.message.startsWith('E_CANCELLED'));
}

/** "E_CODE: message" (UnrecoverableError) or a .code property. */
export function errorCodeOf(err: unknown): string {
  const code = (err as { code?: unknown })?.code;
  if (typeof code === 'string' && /^E[A-Z0-9_]+$/.test(code)) return code;
  const m = /^(E_[A-Z0-9_]+):/.exec(String((err as Error)?.message ?? ''));
  return m ? m[1] : 'E_INTERNAL';
}

/**
 * Turns the BullMQ events of this process's workers into build events on the
 * build's pub/sub channel (the API's SSE stream), stage timings into the shared
 * metrics, and keeps the list of running jobs (heartbeat, cancellation).
 * Everything here is advisory: a failed publish is logged, never fails a job.
 */
export class BuildEventPublisher {
  private readonly active = new Map<string, ActiveJob>();

  constructor(
    private readonly redis: Redis,
    private readonly farm: FarmNames,
    private readonly workerId: string,
    private readonly gpu: () => WorkerInfo['gpu'],
    private readonly log: Logger,
    /** Called when a running job enters a new stage (the job's log notes it). */
    private readonly onStage?: (buildId: string, target: string, stage: string, percent: number) => void,
  ) {}

  /** Running jobs of one build (for cancellation). */
  jobsOf(buildId: string): ActiveJob[] {
    return [...this.active.values()].filter((j) => j.buildId === buildId);
  }

  activeJobs(): ActiveJob[] {
    return [...this.active.values()];
  }

  attachTargetWorker(worker: Worker): void {
    worker.on('active', (job: Job<TargetJobData>) => this.onActive(worker, job));
    worker.on('progress', (job: Job<TargetJobData>, progress: unknown) => this.onProgress(job, progress as TargetJobProgress));
    worker.on('completed', (job: Job<TargetJobData>) => this.onEnd(job, null));
    worker.on('failed', (job: Job<TargetJobData> | undefined, err: Error) => {
      if (job) this.onEnd(job, err);
    });
  }

  attachFinalizeWorker(worker: Worker): void {
    worker.on('completed', (job: Job<FinalizeJobData>, result: FinalizeResult) => {
      if (!result?.buildId) return;
      const event: BuildStateEvent = { type: 'build', buildId: result.buildId, status: result.buildStatus, at: new Date().toISOString() };
      this.publish(result.buildId, event);
    });
  }

  private onActive(worker: Worker, job: Job<TargetJobData>): void {
    const { buildId, target } = job.data ?? ({} as TargetJobData);
    if (!buildId || !target || !job.id) return;
    const now = Date.now();
    const attempt = job.attemptsMade + 1;
    this.active.set(job.id, { jobId: job.id, buildId, target, worker, attempt, startedAt: now, stage: null, stageSince: now });
    this.publish(buildId, this.targetEvent(job, 'started', 'running', 'starting', 0, { attempt }));
  }

  private onProgress(job: Job<TargetJobData>, progress: TargetJobProgress): void {
    const active = job.id ? this.active.get(job.id) : undefined;
    if (!active || !progress || typeof progress.stage !== 'string') return;
    const now = Date.now();
    if (progress.stage !== active.stage) {
      this.closeStage(active, now);
      active.stage = progress.stage;
      active.stageSince = now;
      this.onStage?.(active.buildId, active.target, progress.stage, progress.percent);
    }
    this.publish(active.buildId, this.targetEvent(job, 'progress', 'running', progress.stage, progress.percent, { attempt: active.attempt }));
  }

  private onEnd(job: Job<TargetJobData>, err: Error | null): void {
    const active = job.id ? this.active.get(job.id) : undefined;
    if (job.id) this.active.delete(job.id);
    const { buildId, target } = job.data ?? ({} as TargetJobData);
    if (!buildId || !target) return;
    const now = Date.now();
    if (active) this.closeStage(active, now);
    let kind: TargetEvent['kind'];
    if (!err) kind = 'succeeded';
    else if (isCancellation(err)) kind = 'cancelled';
    else if (err instanceof UnrecoverableError || err.name === 'UnrecoverableError' || job.attemptsMade >= (job.opts.attempts ?? 1)) kind = 'failed';
    else kind = 'retrying';
    const status = kind === 'retrying' ? 'queued' : kind;
    const code = err ? errorCodeOf(err) : null;
    const event = this.targetEvent(job, kind, status, kind === 'retrying' ? 'waiting-retry' : kind === 'succeeded' ? 'done' : kind, kind === 'succeeded' ? 100 : 0, {
      attempt: active?.attempt ?? job.attemptsMade,
      error: err ? { code, message: err.message.slice(0, 2000) } : null,
    });
    this.publish(buildId, event);
    const outcome = kind === 'succeeded' ? 'succeeded' : kind === 'cancelled' ? 'cancelled' : 'failed';
    if (active) this.metric(() => observeDuration(this.redis, this.farm, 'planforge_build_target_duration_seconds', { target, outcome }, (now - active.startedAt) / 1000));
    if (kind === 'failed' || kind === 'cancelled') this.metric(() => incrementCounter(this.redis, this.farm, 'planforge_target_failures_total', { target, code: code ?? 'E_INTERNAL' }));
  }

  private closeStage(active: ActiveJob, now: number): void {
    if (!active.stage) return;
    const stage = active.stage;
    this.metric(() =>
      observeDuration(this.redis, this.farm, 'planforge_build_stage_duration_seconds', { target: active.target, stage }, (now - active.stageSince) / 1000),
    );
  }

  private targetEvent(
    job: Job<TargetJobData>,
    kind: TargetEvent['kind'],
    status: string,
    stage: string | null,
    percent: number,
    extra: Partial<TargetEvent>,
  ): TargetEvent {
    const gpu = this.gpu();
    return {
      type: 'target',
      kind,
      buildId: job.data.buildId,
      target: job.data.target,
      status,
      stage,
      percent: Number.isFinite(percent) ? percent : 0,
      workerId: this.workerId,
      gpu: gpu ? `${gpu.name}${gpu.sm ? ` (${gpu.sm})` : ''}` : 'cross',
      at: new Date().toISOString(),
      ...extra,
    };
  }

  private publish(buildId: string, event: TargetEvent | BuildStateEvent): void {
    this.redis.publish(buildEventsChannel(this.farm, buildId), JSON.stringify(event)).catch((err: unknown) => {
      this.log.warn({ err: (err as Error).message, buildId }, 'could not publish a build event');
    });
  }

  private metric(write: () => Promise<unknown>): void {
    write().catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'could not record a metric'));
  }
}
