import { z } from 'zod';
import { TARGETS } from '../../../../libs/contracts/index.js';
import type { RouteDoc } from '../docs/route-docs.js';
import { telemetryReportSchema } from '../telemetry/telemetry-report.js';
import { policyBody } from './rollout-policy.js';

/**
 * OpenAPI entries of the rollout watch routes, in the shape of docs/route-docs.ts
 * (to be spread into ROUTE_DOCS). `reporter` is the telemetry-only role.
 */
export type RolloutRouteDoc = Omit<RouteDoc, 'access'> & { access: RouteDoc['access'] | 'reporter' };

type Schema = Record<string, unknown>;
const json = (schema: Schema, description: string) => ({ description, contentType: 'application/json', schema });
const toSchema = (s: z.ZodType): Schema => {
  const { $schema: _drop, ...schema } = z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' }) as Schema;
  return schema;
};
const modelName = { name: 'name', in: 'path' as const, required: true, schema: { type: 'string', pattern: '^[a-z0-9][a-z0-9._-]{0,127}$' }, description: 'Model name.' };
const channelParam = { name: 'channel', in: 'path' as const, required: true, schema: { type: 'string' }, description: 'Channel name, e.g. production.' };
const rolloutSchema: Schema = {
  type: 'object',
  description:
    'state: watching | complete | rolled_back | superseded. evaluation (while watching): per scope (all targets, then each target) the candidate and baseline figures (requests, errors, errorRate, p50Ms, p99Ms, throughput per device-second), each check against its threshold (ok, breach, waiting, no_baseline) and the decision (wait, rollback, complete) with its reason; once decided, the figures the decision was taken on.',
};

export const ROLLOUT_ROUTE_DOCS: Record<string, RolloutRouteDoc> = {
  'POST /v1/telemetry': {
    summary: 'Report fleet telemetry (one report or a batch)',
    description: `A report, or an array of at most TELEMETRY_MAX_BATCH (500) reports, each: model, channel, target (${TARGETS.join(', ')}), version, deviceId, window {start, end} (ISO 8601 or epoch ms, at most 1 h, not beyond the allowed clock skew, not older than TELEMETRY_MAX_AGE_SECONDS), requests, errors (≤ requests), and latency {p50Ms, p99Ms} or histogram {bucketsMs (upper bounds), counts}. Stored aggregated per (channel, target, version, TELEMETRY_BUCKET_SECONDS bucket). Bodies above TELEMETRY_MAX_BODY_BYTES → 413; batch fields are named [index].field. With an Idempotency-Key header the reports are written at once and exactly once: a retry of the same body answers 200 with the first answer (Idempotent-Replayed: true) and adds nothing; the same key with another body → 409 E_IDEMPOTENCY_CONFLICT.`,
    tags: ['rollouts'],
    access: 'reporter',
    requestBody: { contentType: 'application/json', schema: { anyOf: [toSchema(telemetryReportSchema), { type: 'array', items: toSchema(telemetryReportSchema), maxItems: 500 }] } },
    responses: {
      '202': json({ type: 'object', properties: { accepted: { type: 'integer' }, series: { type: 'integer' }, buffered: { type: 'boolean' } }, required: ['accepted', 'series', 'buffered'] }, 'Accepted'),
    },
    errors: [400, 401, 403, 404, 413],
  },
  'GET /v1/models/{name}/channels/{channel}/policy': {
    summary: "The channel's rollout policy (the webhook secret is never returned)",
    tags: ['rollouts'],
    access: 'admin',
    parameters: [modelName, channelParam],
    responses: { '200': json({ type: 'object' }, 'The policy (null when none) and the defaults') },
    errors: [400, 401, 403, 404],
  },
  'PUT /v1/models/{name}/channels/{channel}/policy': {
    summary: 'Set the rollout policy: watch window, minimum requests, thresholds, canary default, webhook',
    description:
      'Replaces the policy; fields left out take their defaults. Applies to promotions from now on (a rollout keeps the thresholds it started with). The channel is created if new.',
    tags: ['rollouts'],
    access: 'admin',
    parameters: [modelName, channelParam],
    requestBody: { contentType: 'application/json', schema: toSchema(policyBody(true)) },
    responses: { '200': json({ type: 'object' }, 'The stored policy') },
    errors: [400, 401, 403, 404],
  },
  'GET /v1/models/{name}/channels/{channel}/rollout': {
    summary: "The channel's latest rollout: canary share, window remaining, figures vs thresholds, decision",
    tags: ['rollouts'],
    access: 'viewer',
    parameters: [modelName, channelParam],
    responses: { '200': json({ type: 'object', properties: { model: { type: 'string' }, channel: { type: 'string' }, rollout: { anyOf: [rolloutSchema, { type: 'null' }] } } }, 'The rollout') },
    errors: [400, 401, 403, 404],
  },
  'GET /v1/models/{name}/channels/{channel}/rollouts': {
    summary: "The channel's rollouts, newest first",
    tags: ['rollouts'],
    access: 'viewer',
    parameters: [modelName, channelParam, { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 100 } }],
    responses: { '200': json({ type: 'object', properties: { rollouts: { type: 'array', items: rolloutSchema } } }, 'Rollouts') },
    errors: [400, 401, 403, 404],
  },
};
