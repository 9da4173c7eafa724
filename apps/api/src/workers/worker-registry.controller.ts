import { Controller, Get } from '@nestjs/common';
import { RequireRole } from '../auth/require-role.decorator.js';
import { WorkerRegistryService, type PoolDto, type WorkerDto } from './worker-registry.service.js';

@Controller('v1')
@RequireRole('viewer')
export class WorkerRegistryController {
  constructor(private readonly registry: WorkerRegistryService) {}

  /** Every worker seen in the last 24 h: alive, lost (no heartbeat for 15 s) or stopped. */
  @Get('workers')
  async workers(): Promise<{ workers: WorkerDto[] }> {
    return { workers: await this.registry.workers() };
  }

  /** Per target: workers serving it and its queue. */
  @Get('pools')
  async pools(): Promise<{ pools: PoolDto[] }> {
    return { pools: await this.registry.pools() };
  }
}
