import { Controller, Get, Param, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { Public } from '../auth/require-role.decorator.js';
import { ApiError } from '../errors/api.error.js';
import { StaticFiles } from '../static/static-files.js';

const files = new StaticFiles(import.meta.url, 'dashboard');

/**
 * The dashboard: static HTML/JS/CSS (apps/api/src/dashboard/static), no build
 * step, no CDN. The page itself is public; everything it shows comes from the
 * API with the key the user enters.
 */
@Controller('dashboard')
@Public()
export class DashboardController {
  @Get()
  index(@Res() reply: FastifyReply): Promise<void> {
    return this.serve('index.html', reply);
  }

  @Get(':file')
  file(@Param('file') file: string, @Res() reply: FastifyReply): Promise<void> {
    return this.serve(file, reply);
  }

  private async serve(name: string, reply: FastifyReply): Promise<void> {
    const file = await files.read(name);
    if (!file) throw ApiError.notFound(`no dashboard file ${name.slice(0, 100)}`);
    await reply
      .header('content-type', file.contentType)
      .header('cache-control', 'no-cache')
      // The page only talks to this origin.
      .header('content-security-policy', "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
      .send(file.body);
  }
}
