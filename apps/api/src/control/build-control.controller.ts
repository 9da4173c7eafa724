import { Controller, Delete, Get, Headers, Inject, Param, Query, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { MODEL_NAME_PATTERN } from '../../../../libs/contracts/index.js';
import { API_CONFIG, type ApiAppConfig } from '../api-config.token.js';
import { actorOf } from '../auth/request-actor.js';
import { RequireRole } from '../auth/require-role.decorator.js';
import { apiBaseUrl } from '../dto/links.js';
import { ApiError } from '../errors/api.error.js';
import { BuildControlService, type BuildListItemDto, type CancelBuildResponse } from './build-control.service.js';

const STATES = ['open', 'finished', 'all'] as const;

@Controller('v1/builds')
export class BuildControlController {
  constructor(
    @Inject(API_CONFIG) private readonly config: ApiAppConfig,
    private readonly control: BuildControlService,
  ) {}

  /** Builds newest first: ?state=open|finished|all (default all), ?model=, ?limit= (1-500, default 50). */
  @Get()
  @RequireRole('viewer')
  list(
    @Req() request: FastifyRequest,
    @Query('state') state?: string,
    @Query('model') model?: string,
    @Query('limit') limit?: string,
  ): Promise<{ builds: BuildListItemDto[] }> {
    if (state !== undefined && !(STATES as readonly string[]).includes(state)) throw ApiError.invalidField('state', `expected one of ${STATES.join(', ')}`);
    if (model !== undefined && !MODEL_NAME_PATTERN.test(model)) throw ApiError.invalidField('model', 'not a model name');
    const n = limit === undefined ? undefined : Number(limit);
    if (n !== undefined && (!Number.isInteger(n) || n < 1 || n > 500)) throw ApiError.invalidField('limit', 'expected an integer 1-500');
    return this.control.list({ state: state as (typeof STATES)[number] | undefined, model, limit: n }, apiBaseUrl(this.config, request));
  }

  /**
   * Cancels a queued or running build: waiting targets leave their queues, running
   * ones are interrupted within seconds. Optional header `X-Cancel-Reason`. 409 when it already ended.
   */
  @Delete(':id')
  @RequireRole('submitter')
  cancel(@Param('id') id: string, @Req() request: FastifyRequest, @Headers('x-cancel-reason') reason?: string): Promise<CancelBuildResponse> {
    const actor = actorOf(request);
    const why = reason?.trim() ? reason.trim().slice(0, 500) : 'no reason given';
    return this.control.cancel(id, `${why} (by ${actor.name})`, apiBaseUrl(this.config, request));
  }

  /** The target's build log (text/plain), every attempt in order. */
  @Get(':id/logs/:target')
  @RequireRole('viewer')
  async log(@Param('id') id: string, @Param('target') target: string, @Res() reply: FastifyReply): Promise<void> {
    const stream = await this.control.log(id, target);
    await reply
      .header('content-type', 'text/plain; charset=utf-8')
      .header('content-disposition', `inline; filename="${id}-${target}.log"`)
      .header('cache-control', 'no-store')
      .send(stream);
  }
}
