import { Injectable } from '@nestjs/common';
import { TARGETS, isTarget } from '../../../../libs/contracts/index.js';
import { ModelRepository, PlanRepository, VersionRepository, type ModelVersionEntity } from '../../../../libs/registry/index.js';
import { toModelDto, toPlanDto, toVersionDto, type ModelDto, type PlanDto, type VersionDto } from '../dto/model.dto.js';
import { ApiError } from '../errors/api.error.js';
import { StorageRepository } from '../repositories/storage.repository.js';

/** How long a plan download link stays valid. */
export const PLAN_URL_TTL_SECONDS = 900;

function parseVersion(raw: string): number {
  const version = /^[1-9]\d{0,8}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(version)) throw ApiError.invalidField('version', `must be a positive integer, got "${raw.slice(0, 50)}"`);
  return version;
}

@Injectable()
export class ModelService {
  constructor(
    private readonly models: ModelRepository,
    private readonly versions: VersionRepository,
    private readonly plans: PlanRepository,
    private readonly storage: StorageRepository,
  ) {}

  async list(base: string): Promise<{ models: ModelDto[] }> {
    const models = await this.models.list();
    return { models: models.map((m) => toModelDto(m, base)) };
  }

  async listVersions(name: string, base: string): Promise<{ model: string; versions: VersionDto[] }> {
    await this.requireModel(name);
    const versions = await this.versions.listVersions(name);
    return { model: name, versions: versions.map((v) => toVersionDto(name, v, base)) };
  }

  async getVersion(name: string, rawVersion: string, base: string): Promise<VersionDto> {
    const version = await this.requireVersion(name, rawVersion);
    const plans = await this.plans.listForVersion(version.id);
    return toVersionDto(name, version, base, plans);
  }

  async getPlan(name: string, rawVersion: string, target: string, base: string): Promise<PlanDto> {
    // Plans are per exact SM: an alias (ampere) would name several.
    if (!isTarget(target)) throw ApiError.invalidField('target', `unknown target "${target.slice(0, 50)}": expected one of ${TARGETS.join(', ')}`);
    const version = await this.requireVersion(name, rawVersion);
    const plan = await this.plans.get(version.id, target);
    if (!plan) {
      const failure = version.error?.failedTargets.find((f) => f.target === target);
      const why = !version.spec.targets.includes(target)
        ? `${target} is not a target of this version (targets: ${version.spec.targets.join(', ')})`
        : version.status === 'building'
          ? `no plan for ${target} yet: the version is still building`
          : `no plan for ${target}: it failed to build (${failure?.code ?? 'no error recorded'}${failure?.message ? `: ${failure.message}` : ''})`;
      throw ApiError.notFound(`model "${name}" version ${version.version}: ${why}`);
    }
    const url = await this.storage.presignGet(plan.s3Key, PLAN_URL_TTL_SECONDS);
    const expiresAt = new Date(Date.now() + PLAN_URL_TTL_SECONDS * 1000).toISOString();
    return toPlanDto(name, version.version, plan, { url, expiresAt }, base);
  }

  private async requireModel(name: string): Promise<void> {
    if (!(await this.models.findByName(name))) throw ApiError.notFound(`model "${name.slice(0, 200)}" not found`);
  }

  private async requireVersion(name: string, rawVersion: string): Promise<ModelVersionEntity> {
    const number = parseVersion(rawVersion);
    const version = await this.versions.getVersion(name, number);
    if (version) return version;
    await this.requireModel(name);
    throw ApiError.notFound(`model "${name}" has no version ${number}`);
  }
}
