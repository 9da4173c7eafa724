import { Body, Controller, HttpCode, Post } from '@nestjs/common';
import { RequireRole } from '../auth/require-role.decorator.js';
import { TelemetryService, type TelemetryAccepted } from './telemetry.service.js';

@Controller('v1/telemetry')
export class TelemetryController {
  constructor(private readonly telemetry: TelemetryService) {}

  /** One report or an array of them (a fleet gateway's batch). Keys of the reporter role (or admin). */
  @Post()
  @HttpCode(202)
  @RequireRole('reporter')
  report(@Body() body: unknown): Promise<TelemetryAccepted> {
    return this.telemetry.ingest(body);
  }
}
