import { Controller, Get, Headers, HttpCode, Inject, Param, Post, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { API_CONFIG, type ApiAppConfig } from '../api-config.token.js';
import { actorOf } from '../auth/request-actor.js';
import { RequireRole } from '../auth/require-role.decorator.js';
import type { BuildStatusDto, SubmitBuildResponse } from '../dto/build.dto.js';
import { apiBaseUrl } from '../dto/links.js';
import { BuildService } from '../services/build.service.js';

@Controller('v1/builds')
export class BuildController {
  constructor(
    @Inject(API_CONFIG) private readonly config: ApiAppConfig,
    private readonly builds: BuildService,
  ) {}

  /**
   * multipart/form-data: "spec" (JSON text) and "model" (the ONNX file), in either order.
   * Idempotency-Key: a repeat of the same request answers 200 with the original body.
   */
  @Post()
  @HttpCode(202)
  @RequireRole('submitter')
  async submit(
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
    @Headers('idempotency-key') idempotencyKey: string | undefined,
    @Headers('priority') priority: string | undefined,
  ): Promise<SubmitBuildResponse> {
    const { body, replayed } = await this.builds.submit(request, apiBaseUrl(this.config, request), { actor: actorOf(request), idempotencyKey, priority });
    if (replayed) void reply.status(200).header('idempotent-replayed', 'true');
    void reply.header('location', body.links.self);
    return body;
  }

  @Get(':id')
  @RequireRole('viewer')
  get(@Param('id') id: string, @Req() request: FastifyRequest): Promise<BuildStatusDto> {
    return this.builds.get(id, apiBaseUrl(this.config, request));
  }
}
