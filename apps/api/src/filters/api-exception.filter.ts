import { STATUS_CODES, type IncomingMessage } from 'node:http';
import { Catch, HttpException, Logger, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { BuildSpecError } from '../../../../libs/contracts/index.js';
import { ApiError, type FieldIssue } from '../errors/api.error.js';
import { DEPENDENCY_RETRY_AFTER_SECONDS, isDependencyUnavailable, isInvalidValueError } from './dependency-unavailable.js';

export interface ErrorBody {
  statusCode: number;
  error: string;
  message: string;
  errors?: FieldIssue[];
  code?: string;
  requestId: string;
}

/** How much of a refused upload is still read (and discarded) before the socket is closed. */
const LINGER_BYTES = 1 << 20;
const LINGER_MS = 2_000;

/**
 * Answers a request whose body was not read to its end (an upload refused from its headers or
 * half-way: 401/403/413/400) without losing the answer. Closing a socket that still receives
 * request bytes makes the kernel send a RST, which can destroy the error response before the
 * client reads it (the client then sees EPIPE/ECONNRESET instead of the status).
 * - A body announced at most LINGER_BYTES long is read to its end and discarded: the connection
 *   stays open (keep-alive) and nothing is reset.
 * - A longer or chunked body gets `connection: close`: once the response is out the socket is
 *   half-closed (FIN), the rest is discarded for at most LINGER_BYTES or LINGER_MS ("lingering
 *   close", as web servers do), then the socket is destroyed, so the client has read the answer
 *   long before any reset and the upload is still cut short.
 */
function answerUnreadBody(raw: IncomingMessage, reply: FastifyReply): void {
  const res = reply.raw;
  const announced = Number(raw.headers['content-length']);
  const drainAll = raw.headers['content-length'] !== undefined && Number.isFinite(announced) && announced <= LINGER_BYTES;
  const socket = raw.socket;
  let discarded = 0;
  let closing = false;
  const close = () => {
    if (closing) return;
    closing = true;
    clearTimeout(timer);
    raw.removeListener('data', onData);
    if (res.writableFinished) socket?.destroy();
    else res.once('finish', () => socket?.destroy());
  };
  const onData = (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > LINGER_BYTES) close();
  };
  const timer = setTimeout(close, LINGER_MS);
  timer.unref();
  if (!drainAll) {
    void reply.header('connection', 'close');
    // Node ends a `connection: close` response with socket.destroySoon(), which resets a socket
    // that still receives the body. Half-close instead; close() destroys it within the bounds.
    if (socket) socket.destroySoon = () => void socket.end();
  }
  raw.on('data', onData);
  raw.once('end', () => {
    clearTimeout(timer);
    if (!drainAll) close();
  });
  raw.once('error', close);
  raw.resume();
}

/** Errors from Fastify and its plugins carry a 4xx statusCode and an FST_* code. */
function isClientFrameworkError(err: unknown): err is Error & { statusCode: number; code?: string } {
  const status = (err as { statusCode?: unknown } | null)?.statusCode;
  return err instanceof Error && typeof status === 'number' && status >= 400 && status < 500;
}

/**
 * One JSON error shape for every failure: {statusCode, error, message, errors?, code?, requestId}.
 * Client errors keep their status; anything unexpected is logged with its stack
 * and answered with a 500 that names only the request id.
 */
@Catch()
export class ApiExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('ApiExceptionFilter');

  catch(exception: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const request = ctx.getRequest<FastifyRequest>();
    const reply = ctx.getResponse<FastifyReply>();
    const body = this.toBody(exception, String(request.id));

    if (body.statusCode >= 500) {
      const detail = exception instanceof Error ? (exception.stack ?? exception.message) : String(exception);
      this.logger.error(`${request.method} ${request.url} failed (request ${body.requestId}): ${detail}`);
    }
    if (reply.sent) return;
    // A request body we did not read to its end (an upload refused from its headers or half-way).
    if (!request.raw.complete) answerUnreadBody(request.raw, reply);
    if (body.statusCode === 503 && !reply.hasHeader('retry-after')) void reply.header('retry-after', String(DEPENDENCY_RETRY_AFTER_SECONDS));
    void reply.header('x-request-id', body.requestId).status(body.statusCode).send(body);
  }

  private toBody(exception: unknown, requestId: string): ErrorBody {
    if (exception instanceof ApiError) {
      return {
        statusCode: exception.statusCode,
        error: exception.reason,
        message: exception.message,
        ...(exception.details.errors?.length ? { errors: exception.details.errors } : {}),
        ...(exception.details.code ? { code: exception.details.code } : {}),
        requestId,
      };
    }
    if (exception instanceof BuildSpecError) {
      return { statusCode: 400, error: STATUS_CODES[400]!, message: exception.message, errors: exception.errors, requestId };
    }
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const response = exception.getResponse();
      const raw = typeof response === 'string' ? response : (response as { message?: unknown }).message;
      const message = Array.isArray(raw) ? raw.join('; ') : typeof raw === 'string' ? raw : exception.message;
      if (status < 500) return { statusCode: status, error: STATUS_CODES[status] ?? 'Error', message, requestId };
    } else if (isClientFrameworkError(exception)) {
      const status = exception.statusCode;
      return {
        statusCode: status,
        error: STATUS_CODES[status] ?? 'Error',
        message: exception.message,
        ...(exception.code ? { code: exception.code } : {}),
        requestId,
      };
    }
    // A value Postgres cannot hold (an int beyond int4, a NUL byte in text): the caller's input, not a bug.
    if (isInvalidValueError(exception)) {
      return {
        statusCode: 400,
        error: STATUS_CODES[400]!,
        message: 'a parameter is out of range or not valid text (e.g. a number too large or a NUL byte)',
        code: 'E_INVALID_VALUE',
        requestId,
      };
    }
    // Postgres/Redis down or restarting: the request may succeed later (Retry-After), it is not a bug.
    if (isDependencyUnavailable(exception)) {
      return {
        statusCode: 503,
        error: STATUS_CODES[503]!,
        message: 'a backing service (database or queue) is unavailable; retry later',
        code: 'E_UNAVAILABLE',
        requestId,
      };
    }
    return {
      statusCode: 500,
      error: STATUS_CODES[500]!,
      message: `internal error; quote request id ${requestId} when reporting it`,
      requestId,
    };
  }
}
