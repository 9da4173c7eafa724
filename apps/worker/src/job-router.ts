import { UnrecoverableError, type Job } from 'bullmq';
import { JOB_NAMES } from '../../../libs/contracts/index.js';
import { WorkerStartError } from './worker-start-error.js';

export type JobHandler = (job: Job, token?: string, signal?: AbortSignal) => Promise<unknown>;

const KNOWN_JOB_NAMES: readonly string[] = Object.values(JOB_NAMES);

/**
 * The processor of one queue: dispatches on the job name. Handlers are declared
 * per JOB_NAMES entry and checked when the worker starts, so a misspelt name fails
 * the boot, not the first job; a job with a name nobody handles fails unrecoverably.
 */
export class JobRouter {
  private readonly handlers = new Map<string, JobHandler>();

  constructor(
    readonly queueName: string,
    handlers: Record<string, JobHandler>,
  ) {
    for (const [name, handler] of Object.entries(handlers)) {
      if (!KNOWN_JOB_NAMES.includes(name)) {
        throw new WorkerStartError(`queue ${queueName}: handler for unknown job name "${name}" (known: ${KNOWN_JOB_NAMES.join(', ')})`);
      }
      if (typeof handler !== 'function') throw new WorkerStartError(`queue ${queueName}: handler for "${name}" is not a function`);
      this.handlers.set(name, handler);
    }
    if (this.handlers.size === 0) throw new WorkerStartError(`queue ${queueName}: no job handlers declared`);
  }

  get jobNames(): string[] {
    return [...this.handlers.keys()];
  }

  readonly process = (job: Job, token?: string, signal?: AbortSignal): Promise<unknown> => {
    const handler = this.handlers.get(job.name);
    if (!handler) {
      return Promise.reject(new UnrecoverableError(
        `E_UNKNOWN_JOB: queue ${this.queueName} has no handler for job "${job.name}" (handles ${this.jobNames.join(', ')})`,
      ));
    }
    return handler(job, token, signal);
  };
}
