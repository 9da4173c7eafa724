import { z } from 'zod';
import { PRECISIONS, TARGETS, buildSpecSchema } from '../../../../libs/contracts/index.js';
import { ROLLOUT_ROUTE_DOCS } from '../rollout/rollout-route-docs.js';

/**
 * The documentation half of the OpenAPI document: per route (OpenAPI path +
 * method) what it does, its parameters, body and responses. The routes
 * themselves come from the controllers (openapi.service.ts), and a test fails
 * when a registered route has no entry here.
 */
type Schema = Record<string, unknown>;

export interface RouteDoc {
  summary: string;
  description?: string;
  tags: string[];
  /** Least API key role; 'public' needs none. */
  access: 'public' | 'viewer' | 'submitter' | 'admin' | 'reporter';
  parameters?: { name: string; in: 'path' | 'query' | 'header'; required?: boolean; description?: string; schema: Schema }[];
  requestBody?: { contentType: string; schema: Schema; description?: string };
  /** Success responses; errors are added from `errors`. */
  responses: Record<string, { description: string; contentType?: string; schema?: Schema }>;
  errors?: number[];
}

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const str = (description?: string, extra: Schema = {}): Schema => ({ type: 'string', ...(description && { description }), ...extra });
const int = (description?: string, extra: Schema = {}): Schema => ({ type: 'integer', ...(description && { description }), ...extra });
const nullable = (schema: Schema): Schema => ({ anyOf: [schema, { type: 'null' }] });
const obj = (properties: Record<string, Schema>, required: string[] = Object.keys(properties)): Schema => ({ type: 'object', properties, required });
const arr = (items: Schema): Schema => ({ type: 'array', items });
const target = { type: 'string', enum: [...TARGETS] };
const uuid = { type: 'string', format: 'uuid' };

const pathParam = (name: string, schema: Schema, description?: string) => ({ name, in: 'path' as const, required: true, schema, description });
const buildId = pathParam('id', uuid, 'Build id (UUID).');
const modelName = pathParam('name', { type: 'string', pattern: '^[a-z0-9][a-z0-9._-]{0,127}$' }, 'Model name.');
const versionParam = pathParam('version', { type: 'integer', minimum: 1 }, 'Version number.');
const channelParam = pathParam('channel', { type: 'string' }, 'Channel name, e.g. stable.');

/** JSON Schema of the build spec, straight from the zod schema the API validates with. */
function specSchema(): Schema {
  const { $schema: _drop, ...schema } = z.toJSONSchema(buildSpecSchema, { io: 'input', unrepresentable: 'any' }) as Schema;
  return schema;
}

const timings = obj({
  queuedAt: str(undefined, { format: 'date-time' }),
  startedAt: nullable(str(undefined, { format: 'date-time' })),
  finishedAt: nullable(str(undefined, { format: 'date-time' })),
  queuedMs: nullable(int()),
  runMs: nullable(int()),
  totalMs: nullable(int()),
});

export const COMPONENT_SCHEMAS: Record<string, Schema> = {
  Error: obj(
    {
      statusCode: int(),
      error: str('HTTP reason phrase'),
      message: str(),
      errors: arr(obj({ field: str('Dotted path of the input at fault'), message: str() })),
      code: str('Machine-readable cause, e.g. E_RATE_LIMITED, E_PARSE'),
      requestId: str('Also in the X-Request-Id header'),
    },
    ['statusCode', 'error', 'message', 'requestId'],
  ),
  BuildSpec: specSchema(),
  SubmitBuildResponse: obj(
    {
      buildId: uuid,
      model: str(),
      version: int(),
      targets: arr(target),
      status: { type: 'string', enum: ['queued', 'succeeded'] },
      cacheHits: arr(target),
      warnings: arr(str()),
      links: obj({ self: str(), version: str() }),
    },
    ['buildId', 'model', 'version', 'targets', 'status', 'cacheHits', 'links'],
  ),
  BuildTarget: obj({
    target,
    status: { type: 'string', enum: ['queued', 'running', 'succeeded', 'failed', 'cancelled'] },
    stage: nullable(str()),
    progress: { type: 'number', minimum: 0, maximum: 100 },
    attempts: int(),
    workerId: nullable(str()),
    cacheHit: { type: 'boolean' },
    timings,
    error: nullable(obj({ code: nullable(str()), message: nullable(str()) })),
    links: obj({ plan: nullable(str()) }),
  }),
  BuildStatus: obj({
    buildId: uuid,
    model: str(),
    version: int(),
    modelVersionId: uuid,
    status: { type: 'string', enum: ['queued', 'running', 'succeeded', 'partial', 'failed', 'cancelled'] },
    spec: ref('BuildSpec'),
    timings,
    error: nullable(str()),
    targets: arr(ref('BuildTarget')),
    links: obj({ self: str(), version: str() }),
  }),
  BuildListItem: obj({
    buildId: uuid,
    model: str(),
    version: int(),
    status: str(),
    targets: arr(target),
    priority: nullable({ anyOf: [{ type: 'string', enum: ['release', 'branch'] }, { type: 'integer' }] }),
    createdAt: str(undefined, { format: 'date-time' }),
    startedAt: nullable(str()),
    finishedAt: nullable(str()),
    links: obj({ self: str(), events: str() }),
  }),
  CancelBuildResponse: obj({
    buildId: uuid,
    status: { const: 'cancelled' },
    cancelledTargets: arr(target),
    interruptedTargets: arr(target),
    finishingTargets: arr(target),
    build: ref('BuildStatus'),
  }),
  TargetEvent: obj(
    {
      type: { const: 'target' },
      kind: { type: 'string', enum: ['queued', 'started', 'progress', 'retrying', 'succeeded', 'failed', 'cancelled'] },
      buildId: uuid,
      target,
      status: str(),
      stage: nullable(str('download, optimizer stages, verify, upload, done')),
      percent: { type: 'number' },
      attempt: int(),
      workerId: nullable(str()),
      gpu: nullable(str('GPU name, or "cross"')),
      error: nullable(obj({ code: nullable(str()), message: nullable(str()) })),
      at: str(undefined, { format: 'date-time' }),
    },
    ['type', 'kind', 'buildId', 'target', 'status', 'at'],
  ),
  Worker: obj({
    workerId: str(),
    host: str(),
    pid: int(),
    state: { type: 'string', enum: ['alive', 'lost', 'stopped'] },
    targets: arr(target),
    mode: { type: 'string', enum: ['cross', 'gpu'] },
    gpu: str('GPU name or "cross"'),
    sm: nullable(str()),
    memoryMiB: nullable(int()),
    driver: nullable(str()),
    optimizerVersion: str(),
    currentJobs: arr(str('<buildId>/<target>')),
    startedAt: str(),
    lastSeen: str(),
    lastSeenSecondsAgo: { type: 'number' },
  }),
  Pool: obj({
    target,
    sm: int(),
    family: str(),
    hostArch: { type: 'string', enum: ['x64', 'arm64'] },
    workers: obj({ alive: int(), busy: int(), idle: int(), lost: int() }),
    queue: obj({ waiting: int(), active: int(), delayed: int(), failed: int(), oldestWaitingSeconds: nullable({ type: 'number' }) }),
  }),
  Model: obj({ name: str(), latestVersion: nullable(int()), versionCount: int(), createdAt: str(), links: { type: 'object' } }, ['name']),
  Version: obj(
    {
      version: int(),
      status: { type: 'string', enum: ['building', 'complete', 'partial', 'failed', 'cancelled'] },
      sha256: str(),
      size: int(),
      spec: ref('BuildSpec'),
      specHash: str(),
      targets: arr(target),
      buildId: nullable(uuid),
      createdAt: str(),
      completedAt: nullable(str()),
      error: { type: ['object', 'null'] },
      links: { type: 'object' },
    },
    ['version', 'status', 'sha256', 'targets'],
  ),
  Plan: obj(
    {
      target,
      sha256: str(),
      size: int(),
      precision: { type: 'string', enum: [...PRECISIONS, 'mixed'] },
      tuned: { type: 'boolean' },
      optimizerVersion: str(),
      header: { type: 'object' },
      verification: { type: ['object', 'null'] },
      buildMs: nullable(int()),
      download: obj({ url: str(), expiresAt: str() }),
    },
    ['target', 'sha256', 'size', 'download'],
  ),
  Channel: obj(
    {
      model: str(),
      channel: str(),
      createdAt: str(),
      updatedAt: str(),
      pointers: arr(obj({ target, version: int(), sha256: str(), size: int(), precision: str(), optimizerVersion: str(), updatedAt: str(), links: { type: 'object' } })),
      history: arr(
        obj({ id: int(), target, action: { type: 'string', enum: ['promote', 'rollback'] }, from: nullable(int()), to: int(), actor: str(), reason: nullable(str()), forced: { type: 'boolean' }, at: str() }, [
          'id',
          'target',
          'action',
          'to',
          'at',
        ]),
      ),
    },
    ['model', 'channel', 'pointers'],
  ),
  ChannelChange: obj({ model: str(), channel: str(), action: str(), changes: arr({ type: 'object' }), unchanged: arr(target), forced: { type: 'boolean' }, channelState: ref('Channel') }, [
    'model',
    'channel',
    'action',
    'changes',
  ]),
  ApiKey: obj({ id: uuid, name: str(), role: { type: 'string', enum: ['viewer', 'submitter', 'admin'] }, prefix: str(), createdAt: str(), revokedAt: nullable(str()) }, ['id', 'name', 'role']),
};

const json = (schema: Schema, description: string) => ({ description, contentType: 'application/json', schema });

export const ROUTE_DOCS: Record<string, RouteDoc> = {
  // Rollout watch and fleet telemetry: documented beside their code (apps/api/src/rollout).
  ...ROLLOUT_ROUTE_DOCS,
  'POST /v1/builds': {
    summary: 'Submit a model and build spec',
    description:
      'multipart/form-data with `spec` (JSON text) and `model` (the ONNX file), in either order; optional `calibration` (.npz) or `calibrationTable` (JSON) for INT8. Headers: `Idempotency-Key`, `Priority: release|branch|<1-2097151>`. Rate limited per API key (token bucket): 429 with Retry-After.',
    tags: ['builds'],
    access: 'submitter',
    parameters: [
      { name: 'Priority', in: 'header', schema: { type: 'string' }, description: 'release, branch or a BullMQ priority (lower runs first); overrides spec.priority' },
      { name: 'Idempotency-Key', in: 'header', schema: { type: 'string' }, description: 'A repeat of the same request answers 200 with the original body' },
    ],
    requestBody: {
      contentType: 'multipart/form-data',
      schema: obj({ spec: { ...ref('BuildSpec'), description: 'JSON text' }, model: { type: 'string', format: 'binary' } }, ['spec', 'model']),
    },
    responses: { '202': json(ref('SubmitBuildResponse'), 'Queued (Location: the build)'), '200': json(ref('SubmitBuildResponse'), 'Idempotent replay') },
    errors: [400, 401, 403, 409, 413, 415, 422, 429, 503],
  },
  'GET /v1/builds': {
    summary: 'List builds, newest first',
    tags: ['builds'],
    access: 'viewer',
    parameters: [
      { name: 'state', in: 'query', schema: { type: 'string', enum: ['open', 'finished', 'all'] } },
      { name: 'model', in: 'query', schema: { type: 'string' } },
      { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 500 } },
    ],
    responses: { '200': json(obj({ builds: arr(ref('BuildListItem')) }), 'Builds') },
    errors: [400, 401],
  },
  'GET /v1/builds/{id}': {
    summary: 'Build status per target',
    tags: ['builds'],
    access: 'viewer',
    parameters: [buildId],
    responses: { '200': json(ref('BuildStatus'), 'The build') },
    errors: [400, 401, 404],
  },
  'DELETE /v1/builds/{id}': {
    summary: 'Cancel a queued or running build',
    description: 'Waiting targets leave their queues; running ones are interrupted within seconds; the build, its open targets and its version become cancelled. Optional header X-Cancel-Reason.',
    tags: ['builds'],
    access: 'submitter',
    parameters: [buildId, { name: 'X-Cancel-Reason', in: 'header', schema: { type: 'string', maxLength: 500 } }],
    responses: { '200': json(ref('CancelBuildResponse'), 'Cancelled') },
    errors: [400, 401, 403, 404, 409],
  },
  'GET /v1/builds/{id}/events': {
    summary: 'Live build events (Server-Sent Events)',
    description:
      'event `snapshot` (BuildStatus) first, then `target` (TargetEvent: started on which worker and GPU, each stage with percent, retrying, succeeded/failed/cancelled) and `build` events; a terminal build sends a final `snapshot` and `end`, then the stream closes. Comment lines are heartbeats.',
    tags: ['builds'],
    access: 'viewer',
    parameters: [buildId],
    responses: { '200': { description: 'text/event-stream', contentType: 'text/event-stream', schema: { oneOf: [ref('BuildStatus'), ref('TargetEvent')] } } },
    errors: [400, 401, 404],
  },
  'GET /v1/builds/{id}/logs/{target}': {
    summary: "A target's build log (every attempt)",
    tags: ['builds'],
    access: 'viewer',
    parameters: [buildId, pathParam('target', target)],
    responses: { '200': { description: 'The log', contentType: 'text/plain', schema: { type: 'string' } } },
    errors: [400, 401, 404],
  },
  'GET /v1/models': {
    summary: 'List models',
    tags: ['models'],
    access: 'viewer',
    responses: { '200': json(obj({ models: arr(ref('Model')) }), 'Models') },
    errors: [401],
  },
  'GET /v1/models/{name}/versions': {
    summary: "List a model's versions",
    tags: ['models'],
    access: 'viewer',
    parameters: [modelName],
    responses: { '200': json(obj({ model: str(), versions: arr(ref('Version')) }), 'Versions') },
    errors: [400, 401, 404],
  },
  'GET /v1/models/{name}/versions/{version}': {
    summary: 'One version with links to its plans',
    tags: ['models'],
    access: 'viewer',
    parameters: [modelName, versionParam],
    responses: { '200': json(ref('Version'), 'The version') },
    errors: [400, 401, 404],
  },
  'DELETE /v1/models/{name}/versions/{version}': {
    summary: 'Delete a version (refused while a channel serves it)',
    tags: ['models'],
    access: 'admin',
    parameters: [modelName, versionParam],
    responses: { '200': json({ type: 'object' }, 'Deleted') },
    errors: [400, 401, 403, 404, 409],
  },
  'GET /v1/models/{name}/versions/{version}/plans/{target}': {
    summary: 'Plan metadata and a presigned download URL',
    tags: ['models'],
    access: 'viewer',
    parameters: [modelName, versionParam, pathParam('target', target)],
    responses: { '200': json(ref('Plan'), 'The plan') },
    errors: [400, 401, 404],
  },
  'GET /v1/models/{name}/channels': {
    summary: "A model's release channels",
    tags: ['channels'],
    access: 'viewer',
    parameters: [modelName],
    responses: { '200': json(obj({ model: str(), channels: arr(ref('Channel')) }), 'Channels') },
    errors: [400, 401, 404],
  },
  'GET /v1/models/{name}/channels/{channel}': {
    summary: 'One channel: pointer per target and history',
    tags: ['channels'],
    access: 'viewer',
    parameters: [modelName, channelParam, { name: 'target', in: 'query', schema: target }, { name: 'limit', in: 'query', schema: int() }],
    responses: { '200': json(ref('Channel'), 'The channel') },
    errors: [400, 401, 404],
  },
  'POST /v1/models/{name}/channels/{channel}/promote': {
    summary: 'Point the channel at a version (promotion gate applies)',
    tags: ['channels'],
    access: 'admin',
    parameters: [modelName, channelParam],
    requestBody: { contentType: 'application/json', schema: obj({ version: int(), target, reason: str(), force: { type: 'boolean' } }, ['version']) },
    responses: { '200': json(ref('ChannelChange'), 'Promoted') },
    errors: [400, 401, 403, 404, 409],
  },
  'POST /v1/models/{name}/channels/{channel}/rollback': {
    summary: 'Move the channel back (reason required)',
    tags: ['channels'],
    access: 'admin',
    parameters: [modelName, channelParam],
    requestBody: { contentType: 'application/json', schema: obj({ reason: str(), toVersion: int(), target }, ['reason']) },
    responses: { '200': json(ref('ChannelChange'), 'Rolled back') },
    errors: [400, 401, 403, 404, 409],
  },
  'GET /v1/resolve': {
    summary: 'The plan a device should run (model, channel, SM)',
    tags: ['channels'],
    access: 'viewer',
    parameters: [
      { name: 'model', in: 'query', required: true, schema: { type: 'string' } },
      { name: 'channel', in: 'query', required: true, schema: { type: 'string' } },
      { name: 'sm', in: 'query', required: true, schema: { type: 'string' }, description: '86 or sm_86' },
      { name: 'runtime', in: 'query', schema: { type: 'string' } },
      { name: 'If-None-Match', in: 'header', schema: { type: 'string' } },
    ],
    responses: { '200': json({ type: 'object' }, 'The plan, with a download URL'), '304': { description: 'Unchanged' } },
    errors: [400, 401, 404],
  },
  'POST /v1/admin/keys': {
    summary: 'Create an API key (the secret is shown once)',
    tags: ['admin'],
    access: 'admin',
    requestBody: { contentType: 'application/json', schema: obj({ name: str(), role: { type: 'string', enum: ['viewer', 'submitter', 'admin'] } }) },
    responses: { '201': json({ type: 'object', properties: { key: str() } }, 'Created') },
    errors: [400, 401, 403],
  },
  'GET /v1/admin/keys': {
    summary: 'List API keys',
    tags: ['admin'],
    access: 'admin',
    responses: { '200': json(obj({ keys: arr(ref('ApiKey')) }), 'Keys') },
    errors: [401, 403],
  },
  'DELETE /v1/admin/keys/{id}': {
    summary: 'Revoke an API key',
    tags: ['admin'],
    access: 'admin',
    parameters: [pathParam('id', uuid)],
    responses: { '200': json({ type: 'object' }, 'Revoked') },
    errors: [400, 401, 403, 404],
  },
  'GET /v1/admin/audit': {
    summary: 'Admin audit log',
    tags: ['admin'],
    access: 'admin',
    responses: { '200': json({ type: 'object' }, 'Audit entries') },
    errors: [400, 401, 403],
  },
  'POST /v1/admin/triggers': {
    summary: 'Create a CI webhook trigger',
    tags: ['admin'],
    access: 'admin',
    requestBody: { contentType: 'application/json', schema: { type: 'object' } },
    responses: { '201': json({ type: 'object' }, 'Created') },
    errors: [400, 401, 403],
  },
  'GET /v1/admin/triggers': {
    summary: 'List CI webhook triggers',
    tags: ['admin'],
    access: 'admin',
    responses: { '200': json({ type: 'object' }, 'Triggers') },
    errors: [401, 403],
  },
  'DELETE /v1/admin/triggers/{id}': {
    summary: 'Delete a CI webhook trigger',
    tags: ['admin'],
    access: 'admin',
    parameters: [pathParam('id', uuid)],
    responses: { '200': json({ type: 'object' }, 'Deleted') },
    errors: [400, 401, 403, 404],
  },
  'POST /v1/webhooks/{provider}': {
    summary: 'CI webhook (GitHub, GitLab, generic): signed, submits a build',
    tags: ['webhooks'],
    access: 'public',
    parameters: [pathParam('provider', { type: 'string', enum: ['github', 'gitlab', 'generic'] })],
    requestBody: { contentType: 'application/json', schema: { type: 'object' } },
    responses: { '202': json({ type: 'object' }, 'Build submitted'), '200': json({ type: 'object' }, 'Ignored or replayed') },
    errors: [400, 401, 404, 422, 503],
  },
  'GET /v1/workers': {
    summary: 'Workers: host, GPU or cross, pool, optimizer, current jobs, alive/lost/stopped',
    tags: ['operations'],
    access: 'viewer',
    responses: { '200': json(obj({ workers: arr(ref('Worker')) }), 'Workers') },
    errors: [401],
  },
  'GET /v1/pools': {
    summary: 'Per target: workers and queue',
    tags: ['operations'],
    access: 'viewer',
    responses: { '200': json(obj({ pools: arr(ref('Pool')) }), 'Pools') },
    errors: [401],
  },
  'GET /metrics': {
    summary: 'Prometheus metrics',
    tags: ['operations'],
    access: 'public',
    responses: { '200': { description: 'Prometheus text exposition format', contentType: 'text/plain', schema: { type: 'string' } } },
  },
  'GET /health/live': {
    summary: 'Liveness',
    tags: ['operations'],
    access: 'public',
    responses: { '200': json({ type: 'object' }, 'Alive') },
  },
  'GET /health/ready': {
    summary: 'Readiness: Redis, Postgres, S3',
    tags: ['operations'],
    access: 'public',
    responses: { '200': json({ type: 'object' }, 'Ready'), '503': json({ type: 'object' }, 'Not ready, with checks') },
  },
  'GET /docs': {
    summary: 'This document, as a page',
    tags: ['operations'],
    access: 'public',
    responses: { '200': { description: 'HTML', contentType: 'text/html', schema: { type: 'string' } } },
  },
  'GET /docs/openapi.json': {
    summary: 'This document (OpenAPI 3.1)',
    tags: ['operations'],
    access: 'public',
    responses: { '200': json({ type: 'object' }, 'OpenAPI document') },
  },
  'GET /dashboard': {
    summary: 'The dashboard (HTML)',
    tags: ['operations'],
    access: 'public',
    responses: { '200': { description: 'HTML', contentType: 'text/html', schema: { type: 'string' } } },
  },
  'GET /dashboard/{file}': {
    summary: "The dashboard's scripts and styles",
    tags: ['operations'],
    access: 'public',
    parameters: [pathParam('file', { type: 'string' })],
    responses: { '200': { description: 'A static file', contentType: 'application/octet-stream', schema: { type: 'string' } } },
    errors: [404],
  },
};
