import { pino, type Logger } from 'pino';

export type { Logger };

/** Structured JSON lines on stdout; every line carries the worker id. */
export function createWorkerLogger(workerId: string, level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({
    level,
    base: { service: 'planforge-worker', workerId },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}
