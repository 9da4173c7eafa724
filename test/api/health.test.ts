/** Liveness, readiness and the error shape shared by every endpoint. */
import { DatabaseRepository } from '../../apps/api/src/repositories/database.repository.js';
import { cleanupTestConfig, testConfig } from '../helpers/env.js';
import { json, listen, request, startApi, type ApiUnderTest } from './api-test-kit.js';

describe('health and errors', () => {
  let api: ApiUnderTest;

  beforeAll(async () => {
    api = await startApi();
  });
  afterAll(async () => {
    await api?.app.close();
    await cleanupTestConfig();
  });

  it('is live', async () => {
    const res = await request(api, { method: 'GET', url: '/health/live' });
    expect(res.statusCode).toBe(200);
    expect(json(res)).toEqual({ status: 'ok' });
  });

  it('is ready when Redis, Postgres and the bucket answer', async () => {
    const res = await request(api, { method: 'GET', url: '/health/ready' });
    expect(res.statusCode).toBe(200);
    const body = json(res);
    expect(body.status).toBe('ok');
    for (const check of ['redis', 'postgres', 's3']) expect(body.checks[check]).toMatchObject({ ok: true });
  });

  it('is not ready (503, naming the failed check) when the bucket is missing', async () => {
    const other = await listen({ ...api.config, s3: { ...api.config.s3, bucket: 'no-such-bucket-here' } });
    try {
      const res = await request(other, { method: 'GET', url: '/health/ready' });
      expect(res.statusCode).toBe(503);
      const body = json(res);
      expect(body.status).toBe('unavailable');
      expect(body.checks.s3).toMatchObject({ ok: false });
      expect(body.checks.s3.error).toContain('no-such-bucket-here');
      expect(body.checks.redis.ok).toBe(true);
      expect(body.checks.postgres.ok).toBe(true);
    } finally {
      await other.app.close();
    }
  });

  it('answers unknown routes with the JSON error shape and a request id', async () => {
    const res = await request(api, { method: 'GET', url: '/v1/nothing-here' });
    expect(res.statusCode).toBe(404);
    const body = json(res);
    expect(body).toMatchObject({ statusCode: 404, error: 'Not Found' });
    expect(typeof body.message).toBe('string');
    expect(body.requestId).toBe(res.headers['x-request-id']);
  });

  it('echoes a caller-provided request id', async () => {
    const res = await request(api, { method: 'GET', url: '/health/live', headers: { 'x-request-id': 'trace-42' } });
    expect(res.headers['x-request-id']).toBe('trace-42');
  });

  it('answers malformed JSON bodies with 400, not 500', async () => {
    const res = await request(api, { method: 'POST', url: '/v1/builds', headers: { 'content-type': 'application/json' }, payload: '{bad' });
    expect(res.statusCode).toBe(400);
    expect(json(res).statusCode).toBe(400);
  });
});

describe('unexpected failures', () => {
  afterAll(() => cleanupTestConfig());

  it('answers 500 with a request id and no internals when a dependency breaks mid-flight', async () => {
    const api = await startApi();
    try {
      await api.app.get(DatabaseRepository).close();
      const res = await request(api, { method: 'GET', url: '/v1/models' });
      expect(res.statusCode).toBe(500);
      const body = json(res);
      expect(body).toMatchObject({ statusCode: 500, error: 'Internal Server Error' });
      expect(body.requestId).toBe(res.headers['x-request-id']);
      expect(body.message).toBe(`internal error; quote request id ${body.requestId} when reporting it`);

      const ready = await request(api, { method: 'GET', url: '/health/ready' });
      expect(ready.statusCode).toBe(503);
      expect(json(ready).checks.postgres.ok).toBe(false);
    } finally {
      await api.app.close();
    }
  });

  it('fails to start, without leaking connections, when Postgres is unreachable', async () => {
    const config = await testConfig();
    await expect(listen({ ...config, databaseUrl: 'postgres://nobody@127.0.0.1:1/none' })).rejects.toThrow();
  });
});
