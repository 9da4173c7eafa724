import { Body, Controller, Get, Param, Put, Query, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { actorOf } from '../auth/request-actor.js';
import { RequireRole } from '../auth/require-role.decorator.js';
import { RolloutService } from './rollout.service.js';

@Controller('v1/models/:name/channels/:channel')
export class RolloutController {
  constructor(private readonly rollouts: RolloutService) {}

  /** The channel's rollout policy (thresholds, watch window, canary default, webhook without its secret). */
  @Get('policy')
  @RequireRole('admin')
  getPolicy(@Param('name') name: string, @Param('channel') channel: string) {
    return this.rollouts.getPolicy(name, channel);
  }

  /** {watchSeconds, minRequests, baselineSeconds, maxP99Regression, maxErrorRate, maxThroughputDrop, canaryPercent, webhook: {url, secret}} */
  @Put('policy')
  @RequireRole('admin')
  putPolicy(@Param('name') name: string, @Param('channel') channel: string, @Body() body: unknown, @Req() request: FastifyRequest) {
    return this.rollouts.putPolicy(name, channel, body, actorOf(request), String(request.id));
  }

  /** The latest rollout: state, canary share, window remaining, figures vs thresholds, decision. */
  @Get('rollout')
  @RequireRole('viewer')
  current(@Param('name') name: string, @Param('channel') channel: string) {
    return this.rollouts.current(name, channel);
  }

  /** Past rollouts, newest first (?limit=). */
  @Get('rollouts')
  @RequireRole('viewer')
  list(@Param('name') name: string, @Param('channel') channel: string, @Query() query: unknown) {
    return this.rollouts.list(name, channel, query);
  }
}
