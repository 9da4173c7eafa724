// A worker process: `node dist/apps/worker/src/main.js`, configured by the environment (libs/config).
import { ConfigError, loadWorkerConfig } from '../../../libs/config/index.js';
import { startWorker, type WorkerHandle } from './start-worker.js';
import { createWorkerLogger, type Logger } from './worker-logger.js';

const bootLog = createWorkerLogger(process.env.WORKER_ID ?? `pid-${process.pid}`);

async function main(): Promise<void> {
  const config = loadWorkerConfig();
  const log: Logger = createWorkerLogger(config.worker.id);
  let worker: WorkerHandle | undefined;
  let stopRequested = false;
  let signals = 0;

  const stop = (handle: WorkerHandle) => {
    handle.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  // Installed before start-up: a signal during boot must still end in a clean close.
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      log.warn({ signal }, 'second signal: exiting without waiting for running jobs');
      process.exit(130);
    }
    log.info({ signal }, 'shutting down');
    if (worker) stop(worker);
    else stopRequested = true;
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  worker = await startWorker(config, { logger: log });
  if (stopRequested) stop(worker);
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) bootLog.fatal({ code: err.code, issues: err.issues }, err.message);
  else bootLog.fatal({ err }, 'worker failed to start');
  // Give pino's stdout write a chance to drain before exiting.
  setImmediate(() => process.exit(err instanceof ConfigError ? 78 : 1));
});
