import { Controller, Get, Inject, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { API_CONFIG, type ApiAppConfig } from '../api-config.token.js';
import { Public } from '../auth/require-role.decorator.js';
import { apiBaseUrl } from '../dto/links.js';
import { StaticFiles } from '../static/static-files.js';
import { OpenApiService } from './openapi.service.js';

const files = new StaticFiles(import.meta.url, 'docs');

/** The OpenAPI document and a self-contained page to read it (no CDN: it works offline). */
@Controller('docs')
@Public()
export class DocsController {
  constructor(
    @Inject(API_CONFIG) private readonly config: ApiAppConfig,
    private readonly openapi: OpenApiService,
  ) {}

  @Get()
  async page(@Res() reply: FastifyReply): Promise<void> {
    const file = await files.read('docs.html');
    if (!file) {
      await reply.status(500).send({ statusCode: 500, error: 'Internal Server Error', message: `docs page missing in ${files.root}` });
      return;
    }
    await reply.header('content-type', file.contentType).header('cache-control', 'no-cache').send(file.body);
  }

  @Get('openapi.json')
  document(@Req() request: FastifyRequest): Record<string, unknown> {
    return this.openapi.build(apiBaseUrl(this.config, request));
  }
}
