import { Controller, Get, Headers, Query, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { RequireRole } from '../auth/require-role.decorator.js';
import { ResolveService, type ResolvedDto } from '../services/resolve.service.js';

@Controller('v1/resolve')
export class ResolveController {
  constructor(private readonly resolver: ResolveService) {}

  /** ?model=&channel=&sm=86&runtime=0.1.0 → the plan to download; If-None-Match → 304 while unchanged. */
  @Get()
  @RequireRole('viewer')
  async resolve(
    @Query() query: unknown,
    @Headers('if-none-match') ifNoneMatch: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<ResolvedDto | undefined> {
    const outcome = await this.resolver.resolve(query, ifNoneMatch);
    // Devices poll: they must revalidate every time, and a 304 costs no presigning.
    void reply.header('etag', outcome.etag).header('cache-control', 'no-cache');
    if (outcome.status === 304) {
      void reply.status(304);
      return undefined;
    }
    return outcome.body;
  }
}
