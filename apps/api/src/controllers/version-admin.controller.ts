import { Controller, Delete, Param, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { actorOf } from '../auth/request-actor.js';
import { RequireRole } from '../auth/require-role.decorator.js';
import { VersionAdminService } from '../services/version-admin.service.js';

@Controller('v1/models')
export class VersionAdminController {
  constructor(private readonly versions: VersionAdminService) {}

  /** Refused (409) while a channel serves the version. */
  @Delete(':name/versions/:version')
  @RequireRole('admin')
  delete(@Param('name') name: string, @Param('version') version: string, @Req() request: FastifyRequest): Promise<{ model: string; version: number; deleted: true }> {
    return this.versions.delete(name, version, actorOf(request), String(request.id));
  }
}
