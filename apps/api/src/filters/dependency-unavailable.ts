/**
 * Tells a backing service that is down (Postgres stopped or restarting, Redis
 * unreachable, a connection cut) from a bug: the former is a 503 with Retry-After
 * the client can act on, not a 500.
 */

/** Socket-level failures: the service is not there (yet). */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND']);

/**
 * Postgres SQLSTATEs meaning "not now": class 08 (connection exception), 57P01-57P03
 * (admin/crash shutdown, cannot connect now), 53300 (too many connections).
 */
function isUnavailableSqlState(code: string): boolean {
  return /^08[0-9A-Z]{3}$/.test(code) || code === '57P01' || code === '57P02' || code === '57P03' || code === '53300';
}

/** node-postgres / ioredis messages for a pool or connection that lost its server. */
const MESSAGE_PATTERNS = [
  /Connection terminated/i,
  /timeout exceeded when trying to connect/i,
  /Client has encountered a connection error/i,
  /Connection is closed/i,
  /the database system is (starting up|shutting down|in recovery mode)/i,
  /Reached the max retries per request limit/i,
];

/** Seconds a client should wait before retrying a request refused for this reason. */
export const DEPENDENCY_RETRY_AFTER_SECONDS = 5;

/** True when `err` (or its driverError/cause chain) says a backing service is unreachable. */
export function isDependencyUnavailable(err: unknown): boolean {
  const seen = new Set<unknown>();
  let current: unknown = err;
  while (current && typeof current === 'object' && !seen.has(current)) {
    seen.add(current);
    const e = current as { code?: unknown; errno?: unknown; message?: unknown; driverError?: unknown; cause?: unknown; errors?: unknown };
    if (typeof e.code === 'string' && (NETWORK_CODES.has(e.code) || isUnavailableSqlState(e.code))) return true;
    if (typeof e.message === 'string' && MESSAGE_PATTERNS.some((p) => p.test(e.message as string))) return true;
    // AggregateError (a connect that tried IPv4 and IPv6) carries the socket errors in errors[].
    if (Array.isArray(e.errors) && e.errors.some((inner) => isDependencyUnavailable(inner))) return true;
    current = e.driverError ?? e.cause;
  }
  return false;
}

/**
 * Postgres data exceptions caused by a request's values: 22003 numeric out of range
 * (a version beyond int4), 22021 character not in repertoire (a NUL byte in text),
 * 22P02 invalid text representation, 22001 string too long. Answered 400, not 500.
 */
const INVALID_VALUE_SQLSTATES = new Set(['22003', '22021', '22P02', '22001', '22P05']);

export function isInvalidValueError(err: unknown): boolean {
  const e = err as { code?: unknown; driverError?: { code?: unknown } } | null;
  const code = e?.driverError?.code ?? e?.code;
  return typeof code === 'string' && INVALID_VALUE_SQLSTATES.has(code);
}
