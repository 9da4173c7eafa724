import { Injectable, Logger } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { BuildSpecError } from '../../../../libs/contracts/index.js';
import { WebhookRepository, type WebhookProvider, type WebhookTrigger } from '../../../../libs/registry/index.js';
import { ApiError } from '../errors/api.error.js';
import { rawBodyOf } from '../http/webhook-raw-body.js';
import { ModelFetcherRepository, type FetchedModel } from '../repositories/model-fetcher.repository.js';
import { BuildService } from './build.service.js';
import { encodePathValue, renderTemplate, triggerSpec, type TemplateVars } from './trigger.service.js';
import { verifyGenericSignature, verifyGithubSignature, verifyGitlabToken } from './webhook-signatures.js';

export type WebhookOutcome =
  | { status: 200; body: { pong: true; provider: WebhookProvider; repository: string } }
  | { status: 200; body: { duplicate: true; buildId: string | null; deliveryId: string } }
  | { status: 202; body: { ignored: true; reason: string } }
  | {
      status: 202;
      body: { duplicate: false; deliveryId: string; buildId: string; model: string; version: number; status: string; tag: string; commit: string | null; links: { build: string; version: string } };
    };

/** A tag to build, as read from a provider's payload. */
interface TagEvent {
  kind: 'tag';
  event: string;
  repository: string;
  tag: string;
  commit: string | null;
}

type ParsedEvent = TagEvent | { kind: 'ping'; repository: string } | { kind: 'ignored'; repository: string; reason: string };

const TAG = /^[A-Za-z0-9][A-Za-z0-9._+/-]{0,254}$/;
const COMMIT = /^[0-9a-f]{7,64}$/i;
const DELIVERY_ID = /^[A-Za-z0-9._:-]{1,200}$/;

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return typeof value === 'string' ? value : Array.isArray(value) ? value[0] : undefined;
}

function obj(value: unknown): Record<string, unknown> {
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** JSON, or GitHub's form encoding ("payload=<json>"). */
function parsePayload(raw: Buffer, contentType: string | undefined): Record<string, unknown> {
  let text = raw.toString('utf8');
  if (contentType?.startsWith('application/x-www-form-urlencoded')) text = new URLSearchParams(text).get('payload') ?? '';
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
  } catch {
    /* answered below */
  }
  throw ApiError.badRequest('webhook body is not a JSON object');
}

function refToTag(ref: string | undefined): string | null {
  return ref?.startsWith('refs/tags/') ? ref.slice('refs/tags/'.length) : null;
}

/**
 * CI webhooks: verify the provider's signature over the raw body, map the event
 * to a tag, replay-protect by delivery id, fetch the model the trigger names and
 * submit it through BuildService.submitModelFile (the same path as POST /v1/builds).
 */
@Injectable()
export class WebhookService {
  private readonly logger = new Logger('WebhookService');

  constructor(
    private readonly webhooks: WebhookRepository,
    private readonly fetcher: ModelFetcherRepository,
    private readonly builds: BuildService,
  ) {}

  async handle(provider: WebhookProvider, request: FastifyRequest, base: string): Promise<WebhookOutcome> {
    const raw = rawBodyOf(request);
    if (!raw) throw ApiError.badRequest('webhook request without a body');
    const credential = this.credential(provider, request);
    const payload = parsePayload(raw, header(request, 'content-type'));
    const parsed = this.parseEvent(provider, request, payload);
    const trigger = await this.webhooks.findTrigger(provider, parsed.repository);
    if (!trigger) throw ApiError.notFound(`no ${provider} trigger for repository "${parsed.repository.slice(0, 255)}"`);
    this.verify(provider, trigger, raw, credential);

    if (parsed.kind === 'ping') return { status: 200, body: { pong: true, provider, repository: trigger.repository } };
    if (parsed.kind === 'ignored') return { status: 202, body: { ignored: true, reason: parsed.reason } };

    const deliveryId = this.deliveryId(provider, request);
    const claim = await this.webhooks.claimDelivery({ provider, deliveryId, triggerId: trigger.id, event: parsed.event });
    if (claim.state === 'duplicate') return { status: 200, body: { duplicate: true, buildId: claim.buildId, deliveryId } };
    try {
      const accepted = await this.build(trigger, parsed, deliveryId, base);
      await this.webhooks.setDeliveryBuild(claim.id, accepted.buildId);
      return {
        status: 202,
        body: {
          duplicate: false,
          deliveryId,
          buildId: accepted.buildId,
          model: accepted.model,
          version: accepted.version,
          status: accepted.status,
          tag: parsed.tag,
          commit: parsed.commit,
          links: { build: accepted.links.self, version: accepted.links.version },
        },
      };
    } catch (err) {
      // No build came of it: a redelivery (after fixing the trigger or the source) may try again.
      await this.webhooks.releaseDelivery(claim.id).catch(() => undefined);
      throw err;
    }
  }

  private async build(trigger: WebhookTrigger, event: TagEvent, deliveryId: string, base: string) {
    const vars: TemplateVars = { repository: trigger.repository, tag: event.tag, commit: event.commit ?? '', ref: `refs/tags/${event.tag}` };
    let model: FetchedModel;
    if (trigger.source.type === 's3') {
      model = await this.fetcher.fromS3(renderTemplate(trigger.source.keyTemplate, vars));
    } else {
      let url: URL;
      try {
        url = new URL(renderTemplate(trigger.source.urlTemplate, vars, encodePathValue));
      } catch {
        throw ApiError.unprocessable(`the trigger's URL template does not give a URL for tag "${event.tag}"`, 'E_SOURCE_TEMPLATE');
      }
      model = await this.fetcher.fromUrl(url, trigger.source.allowedHosts);
    }
    try {
      let spec;
      try {
        spec = triggerSpec(trigger, { 'git.repository': trigger.repository.slice(0, 256), 'git.tag': event.tag.slice(0, 256), ...(event.commit && { 'git.commit': event.commit }) });
      } catch (err) {
        if (err instanceof BuildSpecError) throw ApiError.unprocessable(`the trigger's build spec is no longer valid: ${err.message}`, 'E_TRIGGER_SPEC');
        throw err;
      }
      const accepted = await this.builds.submitModelFile(
        {
          spec,
          model,
          source: {
            type: 'webhook',
            provider: trigger.provider,
            repository: trigger.repository,
            ref: vars.ref,
            tag: event.tag,
            commit: event.commit,
            event: event.event,
            deliveryId,
            triggerId: trigger.id,
            origin: model.origin,
          },
        },
        base,
      );
      this.logger.log(`${trigger.provider} ${trigger.repository} ${event.tag}: build ${accepted.buildId} (${accepted.model} v${accepted.version})`);
      return accepted;
    } finally {
      await model.dispose();
    }
  }

  /** The signature header must be there before anything else is looked at. */
  private credential(provider: WebhookProvider, request: FastifyRequest): string {
    const name = provider === 'github' ? 'x-hub-signature-256' : provider === 'gitlab' ? 'x-gitlab-token' : 'x-planforge-signature';
    const value = header(request, name);
    if (!value) throw new ApiError(401, `missing ${name} header`, { code: 'E_SIGNATURE' });
    return value;
  }

  private verify(provider: WebhookProvider, trigger: WebhookTrigger, raw: Buffer, credential: string): void {
    if (provider === 'github') {
      if (!verifyGithubSignature(trigger.secret, raw, credential)) throw new ApiError(401, 'X-Hub-Signature-256 does not match the body', { code: 'E_SIGNATURE' });
    } else if (provider === 'gitlab') {
      if (!verifyGitlabToken(trigger.secret, credential)) throw new ApiError(401, 'X-Gitlab-Token does not match the trigger', { code: 'E_SIGNATURE' });
    } else {
      const check = verifyGenericSignature(trigger.secret, raw, credential);
      if (!check.ok) throw new ApiError(401, `X-Planforge-Signature refused: ${check.reason}`, { code: 'E_SIGNATURE' });
    }
  }

  private deliveryId(provider: WebhookProvider, request: FastifyRequest): string {
    const name = provider === 'github' ? 'x-github-delivery' : provider === 'gitlab' ? 'x-gitlab-event-uuid' : 'x-planforge-delivery';
    const value = header(request, name);
    if (!value || !DELIVERY_ID.test(value)) throw ApiError.badRequest(`missing or malformed ${name} header (the delivery id, for replay protection)`);
    return value;
  }

  private parseEvent(provider: WebhookProvider, request: FastifyRequest, payload: Record<string, unknown>): ParsedEvent {
    if (provider === 'github') {
      const event = header(request, 'x-github-event');
      if (!event) throw ApiError.badRequest('missing X-GitHub-Event header');
      const repository = str(obj(payload.repository).full_name);
      if (!repository) throw ApiError.badRequest('payload has no repository.full_name');
      if (event === 'ping') return { kind: 'ping', repository };
      if (event === 'push') {
        const tag = refToTag(str(payload.ref));
        if (!tag) return { kind: 'ignored', repository, reason: `push of ${str(payload.ref) ?? 'an unknown ref'}: only tags build` };
        if (payload.deleted === true) return { kind: 'ignored', repository, reason: `tag ${tag} was deleted` };
        return this.tagEvent('push', repository, tag, str(payload.after) ?? str(obj(payload.head_commit).id) ?? null);
      }
      if (event === 'release') {
        const action = str(payload.action);
        if (action !== 'published') return { kind: 'ignored', repository, reason: `release ${action ?? 'event'}: only published releases build` };
        const release = obj(payload.release);
        const tag = str(release.tag_name);
        if (!tag) throw ApiError.badRequest('release payload has no release.tag_name');
        // target_commitish is a branch name or a sha; only a sha is a commit.
        const commitish = str(release.target_commitish);
        return this.tagEvent('release', repository, tag, commitish && COMMIT.test(commitish) ? commitish : null);
      }
      return { kind: 'ignored', repository, reason: `GitHub event "${event.slice(0, 64)}" is not handled (push of a tag, release published and ping are)` };
    }
    if (provider === 'gitlab') {
      const event = header(request, 'x-gitlab-event');
      if (!event) throw ApiError.badRequest('missing X-Gitlab-Event header');
      const repository = str(obj(payload.project).path_with_namespace);
      if (!repository) throw ApiError.badRequest('payload has no project.path_with_namespace');
      if (event !== 'Tag Push Hook') return { kind: 'ignored', repository, reason: `GitLab event "${event.slice(0, 64)}" is not handled (Tag Push Hook is)` };
      const tag = refToTag(str(payload.ref));
      if (!tag) throw ApiError.badRequest('Tag Push Hook without a refs/tags/ ref');
      const commit = str(payload.checkout_sha);
      // GitLab reports a deleted tag with checkout_sha null (and after = 000…).
      if (!commit || /^0+$/.test(commit)) return { kind: 'ignored', repository, reason: `tag ${tag} was deleted` };
      return this.tagEvent('tag_push', repository, tag, commit);
    }
    const repository = str(payload.repository);
    if (!repository) throw ApiError.badRequest('payload has no "repository"');
    const tag = str(payload.tag) ?? refToTag(str(payload.ref));
    if (!tag) return { kind: 'ignored', repository, reason: 'no "tag" (or refs/tags/ "ref") in the payload: nothing to build' };
    return this.tagEvent(str(payload.event) ?? 'tag', repository, tag, str(payload.commit) ?? null);
  }

  private tagEvent(event: string, repository: string, tag: string, commit: string | null): TagEvent {
    if (!TAG.test(tag) || tag.split('/').includes('..')) throw ApiError.badRequest(`tag "${tag.slice(0, 100)}" has characters a build cannot use`);
    if (commit !== null && !COMMIT.test(commit)) throw ApiError.badRequest(`commit "${commit.slice(0, 100)}" is not a hex sha`);
    return { kind: 'tag', event, repository, tag, commit: commit?.toLowerCase() ?? null };
  }
}
