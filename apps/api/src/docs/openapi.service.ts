import { Injectable, RequestMethod } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants.js';
import { ModulesContainer } from '@nestjs/core';
import { COMPONENT_SCHEMAS, ROUTE_DOCS, type RouteDoc } from './route-docs.js';

export interface DiscoveredRoute {
  method: string;
  /** OpenAPI style: /v1/builds/{id}. */
  path: string;
}

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'Bad input (errors[] names the fields)',
  401: 'Missing, invalid or revoked API key',
  403: "The key's role is not enough",
  404: 'Not found',
  409: 'Conflict with the current state',
  413: 'Upload too large',
  415: 'Not multipart/form-data',
  422: 'Not a usable ONNX model',
  429: 'Rate limited (Retry-After says when to retry)',
  503: 'A dependency (Redis, S3, Postgres) is unavailable, or the server is shutting down',
};

const ROLE_TEXT = {
  public: 'No API key needed.',
  viewer: 'Role: viewer or above.',
  submitter: 'Role: submitter or admin.',
  admin: 'Role: admin.',
  reporter: 'Role: reporter (the telemetry role of fleet devices; see apps/api/src/rollout).',
};

/**
 * The OpenAPI 3.1 document, generated from the code: every route the
 * controllers declare (their Nest metadata), described by ROUTE_DOCS, with the
 * build spec's JSON Schema taken from the zod schema the API validates with.
 */
@Injectable()
export class OpenApiService {
  private document?: Record<string, unknown>;

  constructor(private readonly modules: ModulesContainer) {}

  /** Every route the controllers declare. */
  routes(): DiscoveredRoute[] {
    const out = new Map<string, DiscoveredRoute>();
    for (const module of this.modules.values()) {
      for (const wrapper of module.controllers.values()) {
        const controller = wrapper.metatype as (new (...args: unknown[]) => unknown) | null;
        if (!controller) continue;
        const prefixes = ([] as string[]).concat(Reflect.getMetadata(PATH_METADATA, controller) ?? '');
        const proto = controller.prototype as Record<string, unknown>;
        for (const name of Object.getOwnPropertyNames(proto)) {
          const handler = proto[name];
          if (name === 'constructor' || typeof handler !== 'function') continue;
          const method = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined;
          if (method === undefined) continue;
          const paths = ([] as string[]).concat(Reflect.getMetadata(PATH_METADATA, handler) ?? '');
          for (const prefix of prefixes) {
            for (const sub of paths) {
              const path = `/${[prefix, sub].join('/')}`.replace(/\/+/g, '/').replace(/(.)\/$/, '$1').replace(/:([A-Za-z0-9_]+)/g, '{$1}');
              const verb = RequestMethod[method];
              out.set(`${verb} ${path}`, { method: verb, path });
            }
          }
        }
      }
    }
    return [...out.values()].sort((a, b) => (a.path === b.path ? a.method.localeCompare(b.method) : a.path.localeCompare(b.path)));
  }

  /** Routes without an entry in ROUTE_DOCS (a test keeps this empty). */
  undocumented(): DiscoveredRoute[] {
    return this.routes().filter((r) => !ROUTE_DOCS[`${r.method} ${r.path}`]);
  }

  build(serverUrl?: string): Record<string, unknown> {
    if (this.document && !serverUrl) return this.document;
    const paths: Record<string, Record<string, unknown>> = {};
    for (const route of this.routes()) {
      const doc: RouteDoc = ROUTE_DOCS[`${route.method} ${route.path}`] ?? {
        summary: `${route.method} ${route.path}`,
        description: 'Not documented yet.',
        tags: ['other'],
        access: 'admin',
        responses: { '200': { description: 'OK' } },
      };
      const responses: Record<string, unknown> = {};
      for (const [code, r] of Object.entries(doc.responses)) {
        responses[code] = { description: r.description, ...(r.schema && { content: { [r.contentType ?? 'application/json']: { schema: r.schema } } }) };
      }
      for (const code of doc.errors ?? []) {
        responses[String(code)] = { description: ERROR_DESCRIPTIONS[code] ?? 'Error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
      }
      responses['500'] = { description: 'Unexpected failure (the body names only the request id)', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
      const operation: Record<string, unknown> = {
        operationId: `${route.method.toLowerCase()}${route.path.replace(/[{}]/g, '').replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : ''))}`,
        summary: doc.summary,
        description: [doc.description, ROLE_TEXT[doc.access]].filter(Boolean).join('\n\n'),
        tags: doc.tags,
        ...(doc.access === 'public' ? { security: [] } : {}),
        ...(doc.parameters?.length && { parameters: doc.parameters }),
        ...(doc.requestBody && { requestBody: { required: true, content: { [doc.requestBody.contentType]: { schema: doc.requestBody.schema } } } }),
        responses,
      };
      (paths[route.path] ??= {})[route.method.toLowerCase()] = operation;
    }
    const document = {
      openapi: '3.1.0',
      info: {
        title: 'planforge API',
        version: '1',
        description: 'Engine build farm: ONNX models in, per-GPU-architecture optimized plans out, versioned in a registry. Every response carries X-Request-Id.',
      },
      ...(serverUrl && { servers: [{ url: serverUrl }] }),
      security: [{ bearer: [] }],
      tags: ['builds', 'models', 'channels', 'rollouts', 'admin', 'webhooks', 'operations'].map((name) => ({ name })),
      paths,
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'An API key: Authorization: Bearer <key> (or X-API-Key: <key>)' } },
        schemas: COMPONENT_SCHEMAS,
      },
    };
    if (!serverUrl) this.document = document;
    return document;
  }
}
