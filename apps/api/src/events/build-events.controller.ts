import { Controller, Get, Inject, Param, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { API_CONFIG, type ApiAppConfig } from '../api-config.token.js';
import { RequireRole } from '../auth/require-role.decorator.js';
import { apiBaseUrl } from '../dto/links.js';
import { BuildEventsService } from './build-events.service.js';

@Controller('v1/builds')
export class BuildEventsController {
  constructor(
    @Inject(API_CONFIG) private readonly config: ApiAppConfig,
    private readonly events: BuildEventsService,
  ) {}

  /** Server-Sent Events: snapshot, then target/build events, then end. */
  @Get(':id/events')
  @RequireRole('viewer')
  async stream(@Param('id') id: string, @Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    await this.events.stream(id, apiBaseUrl(this.config, request), request, reply);
  }
}
