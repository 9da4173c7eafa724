import type { LoggerService, LogLevel } from '@nestjs/common';
import { pino, type Logger } from 'pino';
import { requestContext } from './request-context.js';

const NEST_TO_PINO: Record<LogLevel, 'info' | 'warn' | 'error' | 'debug' | 'trace' | 'fatal'> = {
  log: 'info',
  warn: 'warn',
  error: 'error',
  debug: 'debug',
  verbose: 'trace',
  fatal: 'fatal',
};

/**
 * Nest's logger as pino JSON lines on stdout, like the workers': level, time,
 * service, context (the Nest logger name), msg, and the request id (plus the
 * build id, when the route names one) of the request being served.
 */
export class PinoNestLogger implements LoggerService {
  readonly pino: Logger;

  constructor(level = process.env.LOG_LEVEL ?? 'info', destination?: { write(line: string): void }) {
    const options = {
      level,
      base: { service: 'planforge-api', pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label: string) => ({ level: label }) },
      mixin: () => {
        const ctx = requestContext.getStore();
        return ctx ? { requestId: ctx.requestId, ...(ctx.buildId && { buildId: ctx.buildId }) } : {};
      },
    };
    this.pino = destination ? pino(options, destination) : pino(options);
  }

  log(message: unknown, ...rest: unknown[]): void {
    this.write('log', message, rest);
  }
  error(message: unknown, ...rest: unknown[]): void {
    this.write('error', message, rest);
  }
  warn(message: unknown, ...rest: unknown[]): void {
    this.write('warn', message, rest);
  }
  debug(message: unknown, ...rest: unknown[]): void {
    this.write('debug', message, rest);
  }
  verbose(message: unknown, ...rest: unknown[]): void {
    this.write('verbose', message, rest);
  }
  fatal(message: unknown, ...rest: unknown[]): void {
    this.write('fatal', message, rest);
  }

  /** Nest passes (message, context) or (message, stack, context) for errors. */
  private write(level: LogLevel, message: unknown, rest: unknown[]): void {
    const strings = rest.filter((r): r is string => typeof r === 'string');
    const context = strings.length ? strings[strings.length - 1] : undefined;
    const stack = level === 'error' && strings.length > 1 ? strings[0] : undefined;
    const fields: Record<string, unknown> = {};
    if (context) fields.context = context;
    if (stack) fields.stack = stack;
    const method = NEST_TO_PINO[level];
    if (message instanceof Error) this.pino[method]({ ...fields, err: message }, message.message);
    else if (message && typeof message === 'object') this.pino[method]({ ...fields, ...(message as Record<string, unknown>) });
    else this.pino[method](fields, String(message));
  }
}
