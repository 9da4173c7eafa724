import { Inject, Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { z } from 'zod';
import { API_KEY_ROLES, ApiKeyRepository, type ApiKeyRecord } from '../../../../libs/registry/index.js';
import { API_CONFIG, type ApiAppConfig } from '../api-config.token.js';
import type { RequestActor } from '../auth/request-actor.js';
import { ApiError } from '../errors/api.error.js';
import { parseInput } from '../dto/validate.js';
import { ApiKeyCacheRepository } from '../repositories/api-key-cache.repository.js';
import { AuditService } from './audit.service.js';

/** Name of the key ensured from ADMIN_API_KEY. */
export const CONFIGURED_ADMIN_KEY_NAME = 'admin (ADMIN_API_KEY)';

export interface ApiKeyDto {
  id: string;
  name: string;
  role: string;
  keyPrefix: string;
  createdBy: string | null;
  createdAt: string;
  revokedAt: string | null;
  status: 'active' | 'revoked';
}

export function toApiKeyDto(k: ApiKeyRecord): ApiKeyDto {
  return {
    id: k.id,
    name: k.name,
    role: k.role,
    keyPrefix: k.keyPrefix,
    createdBy: k.createdBy,
    createdAt: k.createdAt.toISOString(),
    revokedAt: k.revokedAt ? k.revokedAt.toISOString() : null,
    status: k.revokedAt ? 'revoked' : 'active',
  };
}

const createKeyBody = z
  .object({
    name: z.string().trim().min(1).max(100),
    role: z.enum(API_KEY_ROLES),
  })
  .strict();

@Injectable()
export class ApiKeyService implements OnApplicationBootstrap {
  private readonly logger = new Logger('ApiKeyService');

  constructor(
    private readonly keys: ApiKeyRepository,
    private readonly audit: AuditService,
    @Inject(API_CONFIG) private readonly config: ApiAppConfig,
    private readonly keyCache: ApiKeyCacheRepository,
  ) {}

  /** A fresh farm needs a first admin: ADMIN_API_KEY is ensured (stored hashed) at boot. */
  async onApplicationBootstrap(): Promise<void> {
    if (this.config.auth.disabled) this.logger.warn('AUTH_DISABLED=true: every request acts as an admin; never do this outside local development');
    const key = this.config.auth.adminApiKey;
    if (key) {
      const { record, created } = await this.keys.ensure({ key, name: CONFIGURED_ADMIN_KEY_NAME, role: 'admin' });
      if (record.revokedAt) this.logger.warn(`ADMIN_API_KEY (${record.keyPrefix}…) was revoked on ${record.revokedAt.toISOString()}; it stays revoked`);
      else if (created) this.logger.log(`admin key from ADMIN_API_KEY registered (${record.keyPrefix}…)`);
    }
    if (!this.config.auth.disabled && (await this.keys.countActiveAdmins()) === 0) {
      this.logger.warn('no active admin API key: set ADMIN_API_KEY or run `node dist/apps/api/src/cli/create-admin-key.js --name <you>`');
    }
  }

  async create(body: unknown, actor: RequestActor, requestId: string): Promise<ApiKeyDto & { key: string }> {
    const input = parseInput(createKeyBody, body);
    const { record, key } = await this.keys.create({ name: input.name, role: input.role, createdBy: actor.name });
    await this.audit.record(actor, requestId, 'key.create', `key ${record.id}`, { name: record.name, role: record.role, keyPrefix: record.keyPrefix });
    // The only time the key is ever shown.
    return { ...toApiKeyDto(record), key };
  }

  async list(): Promise<{ keys: ApiKeyDto[] }> {
    return { keys: (await this.keys.list()).map(toApiKeyDto) };
  }

  async revoke(id: string, actor: RequestActor, requestId: string): Promise<ApiKeyDto> {
    const before = await this.keys.get(id);
    if (!before) throw ApiError.notFound(`API key ${String(id).slice(0, 100)} not found`);
    const revoked = (await this.keys.revoke(id))!;
    // Other instances hear the NOTIFY; this one must not wait for it.
    this.keyCache.invalidate();
    if (!before.revokedAt) {
      await this.audit.record(actor, requestId, 'key.revoke', `key ${id}`, { name: revoked.name, role: revoked.role, keyPrefix: revoked.keyPrefix });
    }
    return toApiKeyDto(revoked);
  }
}
