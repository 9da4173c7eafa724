import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { ConfigError, loadApiConfig } from '../../../libs/config/index.js';
import { createApiApp } from './api-app.js';
import { PinoNestLogger } from './logging/pino-nest-logger.js';

const logger = new Logger('planforge-api');

async function main(): Promise<void> {
  let config;
  try {
    config = loadApiConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const issue of err.issues) logger.error(`${issue.variable}: ${issue.message}`);
      process.exit(78); // EX_CONFIG
    }
    throw err;
  }
  // JSON lines (pino) carrying the request id: apps/api/src/logging.
  const app = await createApiApp(config, { logger: new PinoNestLogger() });
  await app.listen({ port: config.api.port, host: config.api.host });
  logger.log(`listening on ${await app.getUrl()}`);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.log(`${signal}: closing (in-flight requests finish first)`);
    const timer = setTimeout(() => {
      logger.error('shutdown took longer than 30 s; exiting');
      process.exit(1);
    }, 30_000);
    timer.unref();
    app.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error(`shutdown failed: ${(err as Error).stack ?? String(err)}`);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  logger.error(`failed to start: ${(err as Error)?.stack ?? String(err)}`);
  process.exit(1);
});
