import { Body, Controller, Get, HttpCode, Inject, Param, Post, Query, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { API_CONFIG, type ApiAppConfig } from '../api-config.token.js';
import { actorOf } from '../auth/request-actor.js';
import { RequireRole } from '../auth/require-role.decorator.js';
import { apiBaseUrl } from '../dto/links.js';
import { ChannelService, type ChannelChangeResponse, type ChannelDto } from '../services/channel.service.js';

@Controller('v1/models/:name/channels')
export class ChannelController {
  constructor(
    @Inject(API_CONFIG) private readonly config: ApiAppConfig,
    private readonly channels: ChannelService,
  ) {}

  @Get()
  @RequireRole('viewer')
  list(@Param('name') name: string, @Req() request: FastifyRequest): Promise<{ model: string; channels: ChannelDto[] }> {
    return this.channels.list(name, apiBaseUrl(this.config, request));
  }

  /** Pointer per target and history; ?target=sm_90&limit=50. */
  @Get(':channel')
  @RequireRole('viewer')
  get(@Param('name') name: string, @Param('channel') channel: string, @Query() query: unknown, @Req() request: FastifyRequest): Promise<ChannelDto> {
    return this.channels.get(name, channel, query, apiBaseUrl(this.config, request));
  }

  /** {version, target?, reason?, force?} */
  @Post(':channel/promote')
  @HttpCode(200)
  @RequireRole('admin')
  promote(@Param('name') name: string, @Param('channel') channel: string, @Body() body: unknown, @Req() request: FastifyRequest): Promise<ChannelChangeResponse> {
    return this.channels.promote(name, channel, body, actorOf(request), String(request.id), apiBaseUrl(this.config, request));
  }

  /** {reason, toVersion?, target?} */
  @Post(':channel/rollback')
  @HttpCode(200)
  @RequireRole('admin')
  rollback(@Param('name') name: string, @Param('channel') channel: string, @Body() body: unknown, @Req() request: FastifyRequest): Promise<ChannelChangeResponse> {
    return this.channels.rollback(name, channel, body, actorOf(request), String(request.id), apiBaseUrl(this.config, request));
  }
}
