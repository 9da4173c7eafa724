import { UnrecoverableError, type Job } from 'bullmq';
import type { FinalizeJobData } from '../../../libs/contracts/index.js';
import { RegistryError, isUuid, type FinalizeResult, type VersionRepository } from '../../../libs/registry/index.js';
import type { Logger } from './worker-logger.js';

/**
 * The parent of a build flow: runs once every target job has ended (succeeded
 * or finally failed) and settles the build and version. Idempotent, so any
 * worker process may run it, and running it twice changes nothing.
 */
export class FinalizeJobProcessor {
  constructor(
    private readonly versions: VersionRepository,
    private readonly log: Logger,
  ) {}

  readonly process = async (job: Job<FinalizeJobData, FinalizeResult>): Promise<FinalizeResult> => {
    const buildId = job.data?.buildId;
    const log = this.log.child({ buildId, jobId: job.id });
    if (!isUuid(buildId)) throw new UnrecoverableError(`E_JOB_DATA: buildId is not a uuid: ${String(buildId)}`);
    try {
      const result = await this.versions.finalize(buildId);
      log.info(
        { buildStatus: result.buildStatus, versionStatus: result.versionStatus, succeeded: result.succeeded, failed: result.failed, changed: result.changed },
        'build finalized',
      );
      return result;
    } catch (err) {
      if (err instanceof RegistryError && err.code === 'E_NOT_FOUND') throw new UnrecoverableError(`${err.code}: ${err.message}`);
      throw err;
    }
  };
}
