import type { Job } from 'bullmq';
import type { Target } from '../../../libs/contracts/index.js';
import type { BuildRepository } from '../../../libs/registry/index.js';
import type { Logger } from './worker-logger.js';

export interface TargetJobProgress {
  stage: string;
  percent: number;
}

/**
 * Forwards optimizer progress to the job (Redis, for live watchers) and to the
 * registry, throttled: the optimizer may report per node, Redis and Postgres
 * need a few updates a second at most. A new stage is always forwarded.
 */
export class ProgressReporter {
  private lastStage = '';
  private lastJobUpdate = 0;
  private lastDbUpdate = 0;
  private readonly inflight = new Set<Promise<void>>();

  constructor(
    private readonly job: Job,
    private readonly builds: BuildRepository,
    private readonly buildId: string,
    private readonly target: Target,
    private readonly log: Logger,
    private readonly intervals = { jobMs: 250, dbMs: 1_000 },
  ) {}

  readonly report = (stage: string, percent: number): void => {
    const now = Date.now();
    const pct = Number.isFinite(percent) ? Math.round(Math.min(100, Math.max(0, percent)) * 10) / 10 : 0;
    const newStage = stage !== this.lastStage;
    this.lastStage = stage;
    if (newStage || now - this.lastJobUpdate >= this.intervals.jobMs) {
      this.lastJobUpdate = now;
      this.track(this.job.updateProgress({ stage, percent: pct } satisfies TargetJobProgress), 'job progress');
    }
    if (newStage || now - this.lastDbUpdate >= this.intervals.dbMs) {
      this.lastDbUpdate = now;
      this.track(this.builds.updateTargetProgress(this.buildId, this.target, stage, pct), 'registry progress');
    }
  };

  /** Waits for the updates already sent (so none lands after the final status). */
  async flush(): Promise<void> {
    await Promise.all([...this.inflight]);
  }

  private track(update: Promise<unknown>, what: string): void {
    // Progress is advisory: a failed update is logged, never fails the build.
    const tracked = update.then(
      () => undefined,
      (err: unknown) => this.log.warn({ err }, `${what} update failed`),
    );
    this.inflight.add(tracked);
    void tracked.finally(() => this.inflight.delete(tracked));
  }
}
