import { Inject, Injectable, Logger, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { rateLimitKey } from '../../../../libs/contracts/index.js';
import { API_CONFIG, type ApiAppConfig } from '../api-config.token.js';
import { actorOf, actorScope } from '../auth/request-actor.js';
import { BuildController } from '../controllers/build.controller.js';
import { ApiError } from '../errors/api.error.js';
import { OperationsRedisRepository } from '../events/operations-redis.repository.js';

export const RATE_LIMITED_CODE = 'E_RATE_LIMITED';

/**
 * Token bucket, atomically in Redis (so every API replica shares it), on Redis's
 * clock. KEYS[1]: the bucket; ARGV: capacity, tokens per ms, cost.
 * Returns {allowed 0/1, tokens left (string), ms until enough tokens}.
 */
const TOKEN_BUCKET = `
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then tokens = capacity; ts = now end
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  wait = math.ceil((cost - tokens) / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate) + 1000)
return {allowed, tostring(tokens), wait}
`;

/** The routes that submit builds (handler functions); only they spend tokens. */
const LIMITED_HANDLERS: ReadonlySet<unknown> = new Set([BuildController.prototype.submit]);

/**
 * Per-API-key submission rate limit: SUBMIT_RATE_LIMIT_BURST builds at once,
 * refilled at SUBMIT_RATE_LIMIT_PER_MINUTE. Over the limit: 429 with
 * Retry-After (seconds) before the upload is read. Runs after ApiKeyGuard (it
 * is registered after it), so the caller is known. Redis unreachable: the
 * submission goes ahead (the queue would refuse it anyway).
 */
@Injectable()
export class SubmissionRateLimitGuard implements CanActivate {
  private readonly logger = new Logger('RateLimit');

  constructor(
    @Inject(API_CONFIG) private readonly config: ApiAppConfig,
    private readonly ops: OperationsRedisRepository,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (!LIMITED_HANDLERS.has(context.getHandler())) return true;
    const perMinute = this.config.rateLimit?.submitPerMinute ?? 120;
    const burst = this.config.rateLimit?.submitBurst ?? 60;
    if (perMinute <= 0) return true;
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    const reply = context.switchToHttp().getResponse<FastifyReply>();
    const scope = actorScope(actorOf(request));
    let result: [number, string, number];
    try {
      result = (await this.ops.redis.eval(TOKEN_BUCKET, 1, rateLimitKey(this.ops.farm, scope), burst, perMinute / 60_000, 1)) as [number, string, number];
    } catch (err) {
      this.logger.warn(`rate limit not checked (Redis: ${(err as Error).message})`);
      return true;
    }
    const [allowed, left, waitMs] = result;
    void reply.header('x-ratelimit-limit', `${burst};w=60;rate=${perMinute}`);
    void reply.header('x-ratelimit-remaining', String(Math.floor(Number(left))));
    if (allowed === 1) return true;
    const retryAfter = Math.max(1, Math.ceil(waitMs / 1000));
    void reply.header('retry-after', String(retryAfter));
    throw new ApiError(429, `too many submissions for this API key: ${burst} at once, ${perMinute} per minute; retry in ${retryAfter} s`, {
      code: RATE_LIMITED_CODE,
    });
  }
}
