import type { Redis } from 'ioredis';
import { cancelChannel, cancelledKey, type FarmNames } from '../../../../libs/contracts/index.js';
import type { BuildEventPublisher } from '../events/build-event-publisher.js';
import type { Logger } from '../worker-logger.js';

/** A missed message (subscriber reconnecting) is caught by polling the cancelled keys this often. */
const POLL_MS = 2_000;

/**
 * Stops this process's running jobs of a cancelled build: the API publishes the
 * build id on the farm's cancel channel (and sets a key, for a worker that was
 * not listening); the job's AbortSignal aborts (BullMQ Worker.cancelJob), and the
 * native optimizer stops at its next check.
 */
export class CancelListener {
  private subscriber?: Redis;
  private timer?: NodeJS.Timeout;
  private closed = false;
  private readonly aborted = new Set<string>();

  constructor(
    private readonly redis: Redis,
    private readonly farm: FarmNames,
    private readonly jobs: BuildEventPublisher,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const subscriber = this.redis.duplicate({ maxRetriesPerRequest: null });
    this.subscriber = subscriber;
    subscriber.on('error', (err) => this.log.warn({ err: err.message }, 'cancel subscriber connection error'));
    subscriber.on('message', (_channel: string, buildId: string) => this.cancel(buildId));
    await subscriber.subscribe(cancelChannel(this.farm));
    this.timer = setInterval(() => void this.poll(), POLL_MS);
    this.timer.unref();
  }

  /** Aborts the running jobs of `buildId` in this process; how many were aborted. */
  cancel(buildId: string): number {
    let n = 0;
    for (const job of this.jobs.jobsOf(buildId)) {
      if (this.aborted.has(job.jobId)) continue;
      if (job.worker.cancelJob(job.jobId, 'E_CANCELLED: the build was cancelled')) {
        n++;
        this.aborted.add(job.jobId);
        if (this.aborted.size > 10_000) this.aborted.clear();
        this.log.info({ buildId, jobId: job.jobId, target: job.target }, 'build cancelled: aborting the running job');
      }
    }
    return n;
  }

  private async poll(): Promise<void> {
    const builds = [...new Set(this.jobs.activeJobs().map((j) => j.buildId))];
    for (const buildId of builds) {
      try {
        if (await this.redis.exists(cancelledKey(this.farm, buildId))) this.cancel(buildId);
      } catch {
        // Redis away: the next poll tries again.
      }
    }
  }

  /** Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    await this.subscriber?.quit().catch(() => this.subscriber?.disconnect());
  }
}
