import { Body, Controller, Headers, HttpCode, Post, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { actorOf, actorScope } from '../auth/request-actor.js';
import { RequireRole } from '../auth/require-role.decorator.js';
import { checkIdempotencyKey } from '../services/build.service.js';
import { TelemetryService, type TelemetryAccepted } from './telemetry.service.js';

@Controller('v1/telemetry')
export class TelemetryController {
  constructor(private readonly telemetry: TelemetryService) {}

  /**
   * One report or an array of them (a fleet gateway's batch). Keys of the reporter role (or admin).
   * Idempotency-Key: written exactly once; a repeat answers 200 with the first answer.
   */
  @Post()
  @HttpCode(202)
  @RequireRole('reporter')
  async report(
    @Body() body: unknown,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
    @Headers('idempotency-key') idempotencyKey: string | undefined,
  ): Promise<TelemetryAccepted> {
    checkIdempotencyKey(idempotencyKey);
    const once = idempotencyKey === undefined ? undefined : { scope: `telemetry:${actorScope(actorOf(request))}`, key: idempotencyKey };
    const { body: accepted, replayed } = await this.telemetry.ingest(body, once);
    if (replayed) void reply.status(200).header('idempotent-replayed', 'true');
    return accepted;
  }
}
