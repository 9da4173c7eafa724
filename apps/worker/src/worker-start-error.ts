/** The worker cannot start as configured (bad handler table, unusable mode, …). */
export class WorkerStartError extends Error {
  readonly code = 'E_WORKER_START';

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WorkerStartError';
  }
}
