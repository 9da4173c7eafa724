import { Injectable, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { FastifyInstance } from 'fastify';
import { isUuid } from '../../../../libs/registry/index.js';
import { requestContext, type RequestContext } from './request-context.js';

/**
 * Runs every request inside its RequestContext, so whatever is logged while it
 * is served (services, repositories, the exception filter) carries its request
 * id, and the build id when the route names a build.
 */
@Injectable()
export class RequestContextHooks implements OnModuleInit {
  constructor(private readonly adapterHost: HttpAdapterHost) {}

  onModuleInit(): void {
    const fastify = this.adapterHost.httpAdapter.getInstance<FastifyInstance>();
    fastify.addHook('onRequest', (request, _reply, done) => {
      const store: RequestContext = { requestId: String(request.id), method: request.method };
      requestContext.run(store, () => done());
    });
    fastify.addHook('preHandler', (request, _reply, done) => {
      const id = (request.params as { id?: unknown } | undefined)?.id;
      const store = requestContext.getStore();
      if (store && isUuid(id) && request.url.startsWith('/v1/builds/')) store.buildId = id;
      done();
    });
  }
}
