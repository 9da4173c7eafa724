import { Controller, Get, Inject, Param, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { API_CONFIG, type ApiAppConfig } from '../api-config.token.js';
import { RequireRole } from '../auth/require-role.decorator.js';
import { apiBaseUrl } from '../dto/links.js';
import type { ModelDto, PlanDto, VersionDto } from '../dto/model.dto.js';
import { ModelService } from '../services/model.service.js';

@Controller('v1/models')
@RequireRole('viewer')
export class ModelController {
  constructor(
    @Inject(API_CONFIG) private readonly config: ApiAppConfig,
    private readonly models: ModelService,
  ) {}

  @Get()
  list(@Req() request: FastifyRequest): Promise<{ models: ModelDto[] }> {
    return this.models.list(apiBaseUrl(this.config, request));
  }

  @Get(':name/versions')
  listVersions(@Param('name') name: string, @Req() request: FastifyRequest): Promise<{ model: string; versions: VersionDto[] }> {
    return this.models.listVersions(name, apiBaseUrl(this.config, request));
  }

  @Get(':name/versions/:version')
  getVersion(@Param('name') name: string, @Param('version') version: string, @Req() request: FastifyRequest): Promise<VersionDto> {
    return this.models.getVersion(name, version, apiBaseUrl(this.config, request));
  }

  @Get(':name/versions/:version/plans/:target')
  getPlan(
    @Param('name') name: string,
    @Param('version') version: string,
    @Param('target') target: string,
    @Req() request: FastifyRequest,
  ): Promise<PlanDto> {
    return this.models.getPlan(name, version, target, apiBaseUrl(this.config, request));
  }
}
