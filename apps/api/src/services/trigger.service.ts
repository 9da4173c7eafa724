import { Inject, Injectable } from '@nestjs/common';
import { z } from 'zod';
import { BuildSpecError, MODEL_NAME_PATTERN, parseBuildSpec, type BuildSpec } from '../../../../libs/contracts/index.js';
import { WEBHOOK_PROVIDERS, WebhookRepository, type ModelSourceTemplate, type WebhookTrigger } from '../../../../libs/registry/index.js';
import { API_CONFIG, type ApiAppConfig } from '../api-config.token.js';
import type { RequestActor } from '../auth/request-actor.js';
import { parseInput } from '../dto/validate.js';
import { ApiError } from '../errors/api.error.js';
import { hostOf } from '../repositories/model-fetcher.repository.js';
import { AuditService } from './audit.service.js';

export const TEMPLATE_PLACEHOLDERS = ['repository', 'tag', 'commit', 'ref'] as const;
export type TemplateVars = Record<(typeof TEMPLATE_PLACEHOLDERS)[number], string>;

/** owner/name, or group/subgroup/name on GitLab. */
export const REPOSITORY_PATTERN = /^[A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+)+$/;
const HOST_PATTERN = /^[a-z0-9.-]+(?::\d{1,5})?$/;

const sourceSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('s3'), keyTemplate: z.string().min(1).max(1024) }).strict(),
  z
    .object({
      type: z.literal('url'),
      urlTemplate: z.string().min(1).max(2048),
      allowedHosts: z
        .array(z.string().trim().toLowerCase().regex(HOST_PATTERN, 'expected host or host:port'))
        .min(1)
        .max(32),
    })
    .strict(),
]);

const createTriggerBody = z
  .object({
    provider: z.enum(WEBHOOK_PROVIDERS),
    repository: z.string().max(255).regex(REPOSITORY_PATTERN, 'expected owner/name'),
    /** HMAC key (GitHub, generic) or token (GitLab); stored, never returned. */
    secret: z.string().min(16).max(256),
    model: z.string().regex(MODEL_NAME_PATTERN, 'expected a model name'),
    /** A build spec without "model" (targets, precision, profiles …). */
    spec: z.record(z.string(), z.unknown()),
    source: sourceSchema,
  })
  .strict();

export interface TriggerDto {
  id: string;
  provider: string;
  repository: string;
  model: string;
  spec: Record<string, unknown>;
  source: ModelSourceTemplate;
  createdBy: string | null;
  createdAt: string;
  links: { webhook: string };
}

export function toTriggerDto(t: WebhookTrigger, base: string): TriggerDto {
  return {
    id: t.id,
    provider: t.provider,
    repository: t.repository,
    model: t.modelName,
    spec: t.spec,
    source: t.source,
    createdBy: t.createdBy,
    createdAt: t.createdAt.toISOString(),
    links: { webhook: `${base}/v1/webhooks/${t.provider}` },
  };
}

/** Substitutes {repository} {tag} {commit} {ref}; `encode` makes each value safe where it lands. */
export function renderTemplate(template: string, vars: TemplateVars, encode: (value: string) => string = (v) => v): string {
  return template.replace(/\{([a-z]+)\}/g, (_m, name: string) => encode(vars[name as keyof TemplateVars] ?? ''));
}

function unknownPlaceholders(template: string): string[] {
  return [...template.matchAll(/\{([^}]*)\}/g)].map((m) => m[1]).filter((n) => !(TEMPLATE_PLACEHOLDERS as readonly string[]).includes(n));
}

/** Path-safe: each segment percent-encoded, slashes kept (a repository is owner/name). */
export function encodePathValue(value: string): string {
  return value.split('/').map(encodeURIComponent).join('/');
}

/** The trigger's spec for a model (labels are not plan-affecting: they never defeat the build cache). */
export function triggerSpec(t: Pick<WebhookTrigger, 'spec' | 'modelName'>, labels: Record<string, string> = {}): BuildSpec {
  const base = t.spec as { labels?: Record<string, string> };
  return parseBuildSpec({ ...t.spec, model: t.modelName, labels: { ...(base.labels ?? {}), ...labels } });
}

/** CI triggers: which repository's tags build which model, from where. */
@Injectable()
export class TriggerService {
  constructor(
    @Inject(API_CONFIG) private readonly config: ApiAppConfig,
    private readonly webhooks: WebhookRepository,
    private readonly audit: AuditService,
  ) {}

  async create(body: unknown, actor: RequestActor, requestId: string, base: string): Promise<TriggerDto> {
    const input = parseInput(createTriggerBody, body);
    if ('model' in input.spec) throw ApiError.invalidField('spec.model', 'give the model name in "model", not in the spec');
    try {
      triggerSpec({ spec: input.spec, modelName: input.model });
    } catch (err) {
      if (err instanceof BuildSpecError) {
        const errors = err.errors.map((e) => ({ field: `spec.${e.field}`, message: e.message }));
        throw ApiError.badRequest(`invalid spec: ${errors.map((e) => `${e.field}: ${e.message}`).join('; ')}`, errors);
      }
      throw err;
    }
    this.checkSource(input.source);
    const trigger = await this.webhooks.createTrigger({
      provider: input.provider,
      repository: input.repository,
      secret: input.secret,
      modelName: input.model,
      spec: input.spec,
      source: input.source,
      createdBy: actor.name,
    });
    if (!trigger) throw new ApiError(409, `a ${input.provider} trigger for ${input.repository} exists already; delete it first`, { code: 'E_EXISTS' });
    await this.audit.record(actor, requestId, 'trigger.create', `trigger ${trigger.id}`, {
      provider: trigger.provider,
      repository: trigger.repository,
      model: trigger.modelName,
      source: trigger.source,
    });
    return toTriggerDto(trigger, base);
  }

  async list(base: string): Promise<{ triggers: TriggerDto[] }> {
    return { triggers: (await this.webhooks.listTriggers()).map((t) => toTriggerDto(t, base)) };
  }

  async delete(id: string, actor: RequestActor, requestId: string, base: string): Promise<TriggerDto> {
    const deleted = await this.webhooks.deleteTrigger(id);
    if (!deleted) throw ApiError.notFound(`trigger ${String(id).slice(0, 100)} not found`);
    await this.audit.record(actor, requestId, 'trigger.delete', `trigger ${id}`, { provider: deleted.provider, repository: deleted.repository });
    return toTriggerDto(deleted, base);
  }

  /** Templates use known placeholders; a URL's scheme is allowed and a literal host is on its allow-list. */
  private checkSource(source: ModelSourceTemplate): void {
    const template = source.type === 's3' ? source.keyTemplate : source.urlTemplate;
    const field = source.type === 's3' ? 'source.keyTemplate' : 'source.urlTemplate';
    const unknown = unknownPlaceholders(template);
    if (unknown.length) throw ApiError.invalidField(field, `unknown placeholder ${unknown.map((u) => `{${u}}`).join(', ')}; use ${TEMPLATE_PLACEHOLDERS.map((p) => `{${p}}`).join(' ')}`);
    if (source.type === 's3') {
      if (template.startsWith('/')) throw ApiError.invalidField(field, 'an S3 key does not start with "/"');
      return;
    }
    let url: URL;
    try {
      url = new URL(renderTemplate(template, { repository: 'o/r', tag: 'v1', commit: '0'.repeat(40), ref: 'refs/tags/v1' }, encodePathValue));
    } catch {
      throw ApiError.invalidField(field, 'not a URL');
    }
    const scheme = url.protocol.replace(/:$/, '');
    if (scheme !== 'https' && !(scheme === 'http' && this.config.webhooks.allowInsecureHttp)) {
      throw ApiError.invalidField(field, `scheme ${scheme}:// is not allowed (https only)`);
    }
    if (url.username || url.password) throw ApiError.invalidField(field, 'credentials in the URL are not allowed');
    const hostPart = template.replace(/^[a-z]+:\/\//i, '').split('/')[0];
    if (!hostPart.includes('{') && !source.allowedHosts.includes(hostOf(url))) {
      throw ApiError.invalidField(field, `host "${hostOf(url)}" is not on allowedHosts (${source.allowedHosts.join(', ')})`);
    }
  }
}
