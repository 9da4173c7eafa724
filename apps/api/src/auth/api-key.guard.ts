import { Inject, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import { roleSatisfies } from '../../../../libs/registry/index.js';
import { API_CONFIG, type ApiAppConfig } from '../api-config.token.js';
import { ApiError } from '../errors/api.error.js';
import { ApiKeyCacheRepository } from '../repositories/api-key-cache.repository.js';
import { setActor } from './request-actor.js';
import { ROLE_METADATA, type RouteAccess } from './require-role.decorator.js';

/** `Authorization: Bearer <key>`, or `X-API-Key: <key>`. */
export function presentedKey(request: FastifyRequest): string | null {
  const auth = request.headers.authorization;
  if (typeof auth === 'string') {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    return m ? m[1] : null;
  }
  const header = request.headers['x-api-key'];
  return typeof header === 'string' && header.trim() ? header.trim() : null;
}

/**
 * Every route needs an API key unless marked @Public(); its role must satisfy
 * the route's @RequireRole (admin when none is given: fail closed). Lookups go
 * through ApiKeyCacheRepository, whose cache every instance drops on a revocation
 * (Postgres NOTIFY), so a revoked key stops working at once everywhere. 401: no key or an unknown/revoked one; 403: a valid key
 * without the role.
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly keys: ApiKeyCacheRepository,
    @Inject(API_CONFIG) private readonly config: ApiAppConfig,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const need = this.reflector.getAllAndOverride<RouteAccess | undefined>(ROLE_METADATA, [context.getHandler(), context.getClass()]) ?? 'admin';
    if (need === 'public') return true;
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    if (this.config.auth.disabled) {
      setActor(request, { keyId: null, name: 'auth-disabled', role: 'admin' });
      return true;
    }
    const presented = presentedKey(request);
    if (!presented) {
      throw new ApiError(401, 'missing API key: send "Authorization: Bearer <key>" (or "X-API-Key: <key>")', { code: 'E_UNAUTHENTICATED' });
    }
    const key = presented.length <= 512 ? await this.keys.findActive(presented) : null;
    if (!key) throw new ApiError(401, 'invalid or revoked API key', { code: 'E_UNAUTHENTICATED' });
    setActor(request, { keyId: key.id, name: key.name, role: key.role });
    if (!roleSatisfies(key.role, need)) {
      throw new ApiError(403, `this endpoint needs the ${need} role; key "${key.name}" has the ${key.role} role`, { code: 'E_FORBIDDEN' });
    }
    return true;
  }
}
