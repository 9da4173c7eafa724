/**
 * The OpenAPI document is generated from the code: every route Fastify serves
 * (the Nest controllers) is in it, documented, with error responses; /docs is a
 * self-contained page (no CDN).
 */
import { OpenApiService } from '../../apps/api/src/docs/openapi.service.js';
import { json, request, startApi, type ApiUnderTest } from '../api/api-test-kit.js';
import { cleanupTestConfig } from '../helpers/env.js';

/** Fastify's route tree (printRoutes) → "METHOD /path" with :params as {params}; HEAD and OPTIONS left out. */
export function fastifyRoutes(tree: string): string[] {
  const stack: string[] = [];
  const out = new Set<string>();
  for (const line of tree.split('\n')) {
    const at = line.indexOf('── ');
    if (at < 0) continue;
    const depth = Math.round((at - 2) / 4) + 1;
    const rest = line.slice(at + 3);
    const m = /^(.*?)(?: \(([A-Z, ]+)\))?$/.exec(rest)!;
    stack.length = depth;
    stack[depth - 1] = m[1];
    if (!m[2]) continue;
    const path = stack.join('').replace(/:([A-Za-z0-9_]+)/g, '{$1}').replace(/(.)\/$/, '$1');
    for (const method of m[2].split(',').map((s) => s.trim())) if (method !== 'HEAD' && method !== 'OPTIONS') out.add(`${method} ${path}`);
  }
  return [...out].sort();
}

describe('OpenAPI document and /docs', () => {
  let api: ApiUnderTest;

  beforeAll(async () => {
    api = await startApi();
  });

  afterAll(async () => {
    await api?.app.close();
    await cleanupTestConfig();
  });

  it('contains every registered route, each documented with schemas and error responses', async () => {
    const res = await request(api, { url: '/docs/openapi.json', anonymous: true });
    expect(res.statusCode).toBe(200);
    const doc = json(res);
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.servers[0].url).toBe(api.baseUrl);

    const served = fastifyRoutes(api.app.getHttpAdapter().getInstance().printRoutes({ commonPrefix: false }));
    expect(served.length).toBeGreaterThan(25);
    const documented = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
    );
    expect(served.filter((r) => !documented.includes(r))).toEqual([]);
    expect(documented.filter((r) => !served.includes(r))).toEqual([]);
    expect(api.app.get(OpenApiService).undocumented()).toEqual([]);

    for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
      for (const [method, op] of Object.entries(ops)) {
        expect(op.summary).toBeTruthy();
        expect(op.responses['500']).toBeDefined();
        const success = Object.keys(op.responses).filter((c) => /^[23]/.test(c));
        expect(success.length).toBeGreaterThan(0);
        if (op.security === undefined) expect(op.responses['401']).toBeDefined(); // authenticated routes say how they fail
        for (const p of op.parameters ?? []) if (p.in === 'path') expect(path).toContain(`{${p.name}}`);
        void method;
      }
    }
    // Schemas come from the code: the build spec is the zod schema's JSON Schema.
    expect(doc.components.schemas.BuildSpec.properties.precision.enum).toEqual(['fp32', 'fp16', 'int8']);
    expect(doc.paths['/v1/builds'].post.responses['429']).toBeDefined();
    expect(doc.paths['/v1/builds/{id}/events'].get.responses['200'].content['text/event-stream']).toBeDefined();
  });

  it('serves a self-contained documentation page', async () => {
    const res = await request(api, { url: '/docs', anonymous: true });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.body).toContain('<title>planforge API</title>');
    expect(res.body).not.toMatch(/(src|href)=["']https?:/);
  });
});
