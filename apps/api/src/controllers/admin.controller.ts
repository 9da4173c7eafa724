import { Body, Controller, Delete, Get, Inject, Param, Post, Query, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { API_CONFIG, type ApiAppConfig } from '../api-config.token.js';
import { actorOf } from '../auth/request-actor.js';
import { RequireRole } from '../auth/require-role.decorator.js';
import { apiBaseUrl } from '../dto/links.js';
import { ApiKeyService, type ApiKeyDto } from '../services/api-key.service.js';
import { AuditService, type AuditEntryDto } from '../services/audit.service.js';
import { TriggerService, type TriggerDto } from '../services/trigger.service.js';

@Controller('v1/admin')
@RequireRole('admin')
export class AdminController {
  constructor(
    @Inject(API_CONFIG) private readonly config: ApiAppConfig,
    private readonly keys: ApiKeyService,
    private readonly audit: AuditService,
    private readonly triggers: TriggerService,
  ) {}

  /** {name, role}: 201 with the key, shown this once. */
  @Post('keys')
  createKey(@Body() body: unknown, @Req() request: FastifyRequest): Promise<ApiKeyDto & { key: string }> {
    return this.keys.create(body, actorOf(request), String(request.id));
  }

  @Get('keys')
  listKeys(): Promise<{ keys: ApiKeyDto[] }> {
    return this.keys.list();
  }

  /** Revokes: effective on the next request, on every API instance. */
  @Delete('keys/:id')
  revokeKey(@Param('id') id: string, @Req() request: FastifyRequest): Promise<ApiKeyDto> {
    return this.keys.revoke(id, actorOf(request), String(request.id));
  }

  /** ?limit=100&before=<id>&action=channel. (newest first) */
  @Get('audit')
  listAudit(@Query() query: unknown): Promise<{ entries: AuditEntryDto[]; next: number | null }> {
    return this.audit.list(query);
  }

  @Post('triggers')
  createTrigger(@Body() body: unknown, @Req() request: FastifyRequest): Promise<TriggerDto> {
    return this.triggers.create(body, actorOf(request), String(request.id), apiBaseUrl(this.config, request));
  }

  @Get('triggers')
  listTriggers(@Req() request: FastifyRequest): Promise<{ triggers: TriggerDto[] }> {
    return this.triggers.list(apiBaseUrl(this.config, request));
  }

  @Delete('triggers/:id')
  deleteTrigger(@Param('id') id: string, @Req() request: FastifyRequest): Promise<TriggerDto> {
    return this.triggers.delete(id, actorOf(request), String(request.id), apiBaseUrl(this.config, request));
  }
}
