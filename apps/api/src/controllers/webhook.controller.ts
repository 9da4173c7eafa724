import { Controller, HttpCode, Inject, Param, Post, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { WEBHOOK_PROVIDERS, type WebhookProvider } from '../../../../libs/registry/index.js';
import { API_CONFIG, type ApiAppConfig } from '../api-config.token.js';
import { Public } from '../auth/require-role.decorator.js';
import { apiBaseUrl } from '../dto/links.js';
import { ApiError } from '../errors/api.error.js';
import { WebhookService, type WebhookOutcome } from '../services/webhook.service.js';

/** No API key: each delivery is authenticated by its provider's signature over the raw body. */
@Controller('v1/webhooks')
@Public()
export class WebhookController {
  constructor(
    @Inject(API_CONFIG) private readonly config: ApiAppConfig,
    private readonly webhooks: WebhookService,
  ) {}

  /** github: X-Hub-Signature-256; gitlab: X-Gitlab-Token; generic: X-Planforge-Signature (t=…,v1=…). */
  @Post(':provider')
  @HttpCode(202)
  async receive(
    @Param('provider') provider: string,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<WebhookOutcome['body']> {
    if (!(WEBHOOK_PROVIDERS as readonly string[]).includes(provider)) {
      throw ApiError.notFound(`no webhook provider "${provider.slice(0, 50)}" (${WEBHOOK_PROVIDERS.join(', ')})`);
    }
    const outcome = await this.webhooks.handle(provider as WebhookProvider, request, apiBaseUrl(this.config, request));
    void reply.status(outcome.status);
    return outcome.body;
  }
}
