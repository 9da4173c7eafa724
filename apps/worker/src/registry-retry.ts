import type { Logger } from './worker-logger.js';

/**
 * Postgres unreachable or restarting (socket errors, SQLSTATE class 08, 57P01-57P03,
 * node-postgres' "Connection terminated"): worth waiting for, unlike a constraint violation.
 */
export function isRegistryUnavailable(err: unknown): boolean {
  const seen = new Set<unknown>();
  let current: unknown = err;
  while (current && typeof current === 'object' && !seen.has(current)) {
    seen.add(current);
    const e = current as { code?: unknown; message?: unknown; driverError?: unknown; cause?: unknown };
    if (typeof e.code === 'string' && (/^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN)$/.test(e.code) || /^(08...|57P0[123]|53300)$/.test(e.code))) return true;
    if (typeof e.message === 'string' && /Connection terminated|timeout exceeded when trying to connect|the database system is (starting up|shutting down)/i.test(e.message)) return true;
    current = e.driverError ?? e.cause;
  }
  return false;
}

/**
 * Runs a registry write, waiting out a Postgres outage (exponential backoff, 0.5 s up
 * to 10 s between tries, `budgetMs` in all) instead of failing the job: the plan is
 * already built and stored, so hours of work are kept and recorded once Postgres is
 * back. The writes it wraps are idempotent. Other errors are thrown at once.
 */
export async function withRegistryRetry<T>(what: string, write: () => Promise<T>, log: Logger, budgetMs = 180_000): Promise<T> {
  const deadline = Date.now() + budgetMs;
  let delay = 500;
  for (let attempt = 1; ; attempt++) {
    try {
      return await write();
    } catch (err) {
      if (!isRegistryUnavailable(err) || Date.now() + delay > deadline) throw err;
      log.warn({ what, attempt, retryInMs: delay, err: (err as Error).message }, 'registry unavailable; retrying');
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 10_000);
    }
  }
}
