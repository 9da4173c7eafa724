import { Injectable } from '@nestjs/common';
import { ChannelRepository, VersionAdminRepository, VersionRepository } from '../../../../libs/registry/index.js';
import type { RequestActor } from '../auth/request-actor.js';
import { ApiError } from '../errors/api.error.js';
import { ResolveCacheRepository } from '../repositories/resolve-cache.repository.js';
import { AuditService } from './audit.service.js';

/**
 * Versions and plans are immutable: nothing edits them. Deleting one is an admin
 * action, refused while a channel serves it or while it is still building.
 */
@Injectable()
export class VersionAdminService {
  constructor(
    private readonly versions: VersionRepository,
    private readonly channels: ChannelRepository,
    private readonly admin: VersionAdminRepository,
    private readonly audit: AuditService,
    private readonly resolveCache: ResolveCacheRepository,
  ) {}

  async delete(model: string, rawVersion: string, actor: RequestActor, requestId: string): Promise<{ model: string; version: number; deleted: true }> {
    const number = /^[1-9]\d{0,8}$/.test(rawVersion) ? Number(rawVersion) : NaN;
    if (!Number.isSafeInteger(number)) throw ApiError.invalidField('version', `must be a positive integer, got "${rawVersion.slice(0, 50)}"`);
    const version = await this.versions.getVersion(model, number);
    if (!version) throw ApiError.notFound(`model "${model.slice(0, 200)}" has no version ${number}`);
    const pointing = await this.channels.pointingAt(version.id);
    if (pointing.length) {
      throw new ApiError(
        409,
        `model "${model}" version ${number} is served by ${pointing.map((p) => `channel "${p.channel}" (${p.target})`).join(', ')}: promote or roll back those first`,
        { code: 'E_IN_USE' },
      );
    }
    if (version.status === 'building') throw new ApiError(409, `model "${model}" version ${number} is still building`, { code: 'E_BUILDING' });
    try {
      await this.admin.deleteVersion(version.id);
    } catch (err) {
      // A promotion committed between the check and the delete: the foreign key refuses.
      if ((err as { code?: string }).code === '23503') throw new ApiError(409, `model "${model}" version ${number} is served by a channel`, { code: 'E_IN_USE' });
      throw err;
    } finally {
      // A canary's previous version may be the one deleted: this instance must not wait for the NOTIFY.
      this.resolveCache.invalidate();
    }
    await this.audit.record(actor, requestId, 'version.delete', `model ${model} version ${number}`, {
      versionId: version.id,
      sha256: version.modelSha256,
      status: version.status,
    });
    return { model, version: number, deleted: true };
  }
}
