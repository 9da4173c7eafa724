import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { Logger, type LoggerService, type LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import type { ApiAppConfig } from './api-config.token.js';
import { ApiModule } from './api.module.js';
import { registerWebhookRawBody } from './http/webhook-raw-body.js';

export interface CreateApiAppOptions {
  /** Nest logger: false silences it (tests), a level list filters it. Default: log, warn, error. */
  logger?: LoggerService | LogLevel[] | false;
}

/** Request ids: the caller's X-Request-Id when it is sane, else a fresh UUID. */
function requestId(raw: { headers: Record<string, string | string[] | undefined> }): string {
  const given = raw.headers['x-request-id'];
  return typeof given === 'string' && /^[A-Za-z0-9._:-]{1,128}$/.test(given) ? given : randomUUID();
}

/**
 * The API as a Nest application on Fastify, initialized (connected to Postgres,
 * migrations applied) but not listening: call `app.listen({ port, host })`.
 * (`app.inject()` works in plain Node, not under jest on Node 20: light-my-request
 * require()s the ESM-only "cookie" package.) `app.close()` releases every connection.
 */
export async function createApiApp(config: ApiAppConfig, options: CreateApiAppOptions = {}): Promise<NestFastifyApplication> {
  const adapter = new FastifyAdapter({
    genReqId: requestId,
    // Plugin-wide ceilings; the upload reader sets the precise per-request limits.
    multipart: { limits: { fileSize: config.api.maxUploadBytes, files: 2, fields: 4, parts: 6 } },
    // A proxy in front terminates TLS: links use the client's scheme and host.
    trustProxy: true,
    // Models reach several GB: a whole request may take long, but a client that stops
    // sending for 2 minutes is gone (its temp file is removed when the socket closes).
    connectionTimeout: 120_000,
    requestTimeout: 3_600_000,
  });
  const app = await NestFactory.create<NestFastifyApplication>(ApiModule.forRoot(config), adapter, {
    logger: options.logger ?? ['log', 'warn', 'error'],
    bufferLogs: false,
    // Errors reach the caller (main.ts, tests) instead of Nest calling process.exit().
    abortOnError: false,
    // While closing: new requests get a 503, requests in flight finish before the
    // repositories release Postgres, Redis and S3 (onApplicationShutdown).
    return503OnClosing: true,
  });
  const fastify = app.getHttpAdapter().getInstance();
  // Webhook signatures are over the exact bytes received.
  registerWebhookRawBody(fastify);
  fastify.addHook('onSend', async (request, reply) => {
    void reply.header('x-request-id', request.id);
  });
  // One line per API call; probes would drown the rest.
  const http = new Logger('Http');
  fastify.addHook('onResponse', async (request, reply) => {
    if (request.url.startsWith('/health/')) return;
    http.log(`${request.method} ${request.url} ${reply.statusCode} ${Math.round(reply.elapsedTime)}ms (request ${request.id})`);
  });
  try {
    await app.init();
  } catch (err) {
    // Release what the partial start acquired (Redis connection, S3 client) before reporting.
    await app.close().catch(() => undefined);
    throw err;
  }
  return app;
}

export type { NestFastifyApplication };
