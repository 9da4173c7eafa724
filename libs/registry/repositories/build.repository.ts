import type { DataSource } from 'typeorm';
import type { Target } from '../../contracts/index.js';
import { BuildTargetEntity } from '../entities/build-target.entity.js';
import { BuildEntity } from '../entities/build.entity.js';
import { RegistryError, isUuid } from '../registry-error.js';

export interface BuildWithTargets extends BuildEntity {
  targets: Target[];
  targetStates: BuildTargetEntity[];
}

/** Messages end up in the API and logs: keep them bounded. */
const MAX_MESSAGE = 4000;

/** Per-target state of a build, written by the worker running the target's job. */
export class BuildRepository {
  constructor(private readonly ds: DataSource) {}

  /** A build with the state of each target (targetStates, in target order); null when unknown. */
  async get(buildId: string): Promise<BuildWithTargets | null> {
    if (!isUuid(buildId)) return null;
    const build = await this.ds.getRepository(BuildEntity).findOneBy({ id: buildId });
    if (!build) return null;
    const targetStates = await this.ds.getRepository(BuildTargetEntity).find({ where: { buildId }, order: { target: 'ASC' } });
    return Object.assign(build, { targetStates });
  }

  /** Builds of a model version, newest first. */
  listForVersion(modelVersionId: string): Promise<BuildEntity[]> {
    if (!isUuid(modelVersionId)) return Promise.resolve([]);
    return this.ds.getRepository(BuildEntity).find({ where: { modelVersionId }, order: { createdAt: 'DESC' } });
  }

  getTarget(buildId: string, target: Target): Promise<BuildTargetEntity | null> {
    if (!isUuid(buildId)) return Promise.resolve(null);
    return this.ds.getRepository(BuildTargetEntity).findOneBy({ buildId, target });
  }

  /** A worker picked up attempt `attempt` (1-based) of the target's job. */
  async markTargetRunning(buildId: string, target: Target, workerId: string, attempt: number): Promise<void> {
    await this.updateTarget(buildId, target, {
      status: 'running',
      attempts: attempt,
      workerId,
      progress: 0,
      stage: 'starting',
      startedAt: () => 'now()',
      finishedAt: null,
    });
    await this.ds
      .createQueryBuilder()
      .update(BuildEntity)
      .set({ status: 'running', startedAt: () => 'COALESCE(started_at, now())' })
      .where('id = :buildId AND status = :queued', { buildId, queued: 'queued' })
      .execute();
  }

  /** Best effort: progress of a target that is no longer running is dropped. */
  async updateTargetProgress(buildId: string, target: Target, stage: string, percent: number): Promise<void> {
    if (!isUuid(buildId)) return;
    const progress = Number.isFinite(percent) ? Math.min(100, Math.max(0, percent)) : 0;
    await this.ds
      .createQueryBuilder()
      .update(BuildTargetEntity)
      .set({ stage: stage.slice(0, 200), progress })
      .where('build_id = :buildId AND target = :target AND status = :running', { buildId, target, running: 'running' })
      .execute();
  }

  async markTargetSucceeded(buildId: string, target: Target): Promise<void> {
    await this.updateTarget(buildId, target, {
      status: 'succeeded',
      progress: 100,
      stage: 'done',
      finishedAt: () => 'now()',
      errorCode: null,
      errorMessage: null,
    });
  }

  /** Final failure: no attempt follows. */
  async markTargetFailed(buildId: string, target: Target, code: string, message: string): Promise<void> {
    await this.updateTarget(buildId, target, {
      status: 'failed',
      stage: 'failed',
      finishedAt: () => 'now()',
      errorCode: code,
      errorMessage: message.slice(0, MAX_MESSAGE),
    });
  }

  /** This attempt failed and BullMQ will retry: back to queued, keeping the error for whoever looks. */
  async markTargetRetrying(buildId: string, target: Target, code: string, message: string): Promise<void> {
    await this.updateTarget(buildId, target, {
      status: 'queued',
      stage: 'waiting-retry',
      finishedAt: null,
      errorCode: code,
      errorMessage: message.slice(0, MAX_MESSAGE),
    });
  }

  private async updateTarget(buildId: string, target: Target, values: Record<string, unknown>): Promise<void> {
    if (!isUuid(buildId)) throw new RegistryError('E_NOT_FOUND', `no build ${buildId}`);
    const result = await this.ds
      .createQueryBuilder()
      .update(BuildTargetEntity)
      .set(values)
      .where('build_id = :buildId AND target = :target', { buildId, target })
      .execute();
    if (!result.affected) throw new RegistryError('E_NOT_FOUND', `build ${buildId} has no target ${target}`);
  }
}
