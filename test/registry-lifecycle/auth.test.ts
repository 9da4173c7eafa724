/** API keys and roles: 401 without a valid key, 403 without the role, revocation at once, the CLI. */
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanupTestConfig, testConfig, testConfigEnv } from '../helpers/env.js';
import { json, listen, multipartBody, multipartHeaders, request, submitParts, type ApiUnderTest } from '../api/api-test-kit.js';
import type { AppConfig } from '../../libs/config/index.js';
import { tinyConvNet } from '../helpers/onnx-builder.js';
import { as, mintKeys, openRegistry, seedVersion, type Registry } from './lifecycle-kit.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'apps', 'api', 'src', 'cli', 'create-admin-key.js');

type Role = 'viewer' | 'submitter' | 'admin';

interface Endpoint {
  method: string;
  url: string;
  need: Role;
  payload?: Record<string, unknown> | Buffer;
  headers?: Record<string, string>;
}

describe('API keys and roles', () => {
  let api: ApiUnderTest;
  let reg: Registry;
  let keys: Awaited<ReturnType<typeof mintKeys>>;
  let config: AppConfig;

  beforeAll(async () => {
    config = await testConfig();
    api = await listen(config);
    reg = await openRegistry(api);
    keys = await mintKeys(api);
    await seedVersion(reg, 'guarded', { sm_80: {} });
  });
  afterAll(async () => {
    await reg?.close();
    await api?.app.close();
    await cleanupTestConfig();
  });

  it('stores keys hashed and shows them once', async () => {
    const rows = await reg.ds.query(`SELECT name, role, key_hash, key_prefix FROM api_keys ORDER BY created_at`);
    expect(rows.map((r: any) => r.role)).toEqual(['admin', 'viewer', 'submitter', 'admin']);
    for (const r of rows) {
      expect(r.key_hash).toMatch(/^[0-9a-f]{64}$/);
      expect(Object.values(keys).includes(r.key_hash)).toBe(false);
    }
    expect(keys.viewer).toMatch(/^pf_[A-Za-z0-9_-]{43}$/);
    const listed = json(await request(api, { url: '/v1/admin/keys' }));
    expect(listed.keys).toHaveLength(4);
    expect(JSON.stringify(listed)).not.toContain(keys.viewer);
    expect(listed.keys[1]).toMatchObject({ name: 'test-viewer', role: 'viewer', status: 'active', keyPrefix: keys.viewer.slice(0, 10) });
  });

  it('answers 401 without a valid key and 403 without the role, on every guarded endpoint', async () => {
    const submitBody = multipartBody(submitParts({ spec: { model: 'guarded', targets: ['sm_80'] }, model: tinyConvNet() }));
    const endpoints: Endpoint[] = [
      { method: 'GET', url: '/v1/models', need: 'viewer' },
      { method: 'GET', url: '/v1/models/guarded/versions', need: 'viewer' },
      { method: 'GET', url: '/v1/models/guarded/versions/1', need: 'viewer' },
      { method: 'GET', url: '/v1/models/guarded/versions/1/plans/sm_80', need: 'viewer' },
      { method: 'GET', url: '/v1/builds/00000000-0000-4000-8000-000000000000', need: 'viewer' },
      { method: 'GET', url: '/v1/models/guarded/channels', need: 'viewer' },
      { method: 'GET', url: '/v1/models/guarded/channels/production', need: 'viewer' },
      { method: 'GET', url: '/v1/resolve?model=guarded&channel=production&sm=80', need: 'viewer' },
      { method: 'POST', url: '/v1/builds', need: 'submitter', payload: submitBody, headers: multipartHeaders() },
      { method: 'POST', url: '/v1/models/guarded/channels/production/promote', need: 'admin', payload: { version: 1 } },
      { method: 'POST', url: '/v1/models/guarded/channels/production/rollback', need: 'admin', payload: { reason: 'x' } },
      { method: 'DELETE', url: '/v1/models/guarded/versions/99', need: 'admin' },
      { method: 'POST', url: '/v1/admin/keys', need: 'admin', payload: { name: 'n', role: 'viewer' } },
      { method: 'GET', url: '/v1/admin/keys', need: 'admin' },
      { method: 'DELETE', url: '/v1/admin/keys/00000000-0000-4000-8000-000000000000', need: 'admin' },
      { method: 'GET', url: '/v1/admin/audit', need: 'admin' },
      { method: 'GET', url: '/v1/admin/triggers', need: 'admin' },
      { method: 'POST', url: '/v1/admin/triggers', need: 'admin', payload: {} },
      { method: 'DELETE', url: '/v1/admin/triggers/00000000-0000-4000-8000-000000000000', need: 'admin' },
    ];
    const rank: Record<Role, number> = { viewer: 0, submitter: 1, admin: 2 };
    for (const e of endpoints) {
      const opts = { method: e.method, url: e.url, payload: e.payload, headers: e.headers };
      const label = `${e.method} ${e.url}`;
      const anonymous = await as(api, null, opts);
      expect([label, anonymous.statusCode]).toEqual([label, 401]);
      expect(json(anonymous).code).toBe('E_UNAUTHENTICATED');
      const bogus = await as(api, 'pf_not-a-real-key-at-all-0000000000000000000', opts);
      expect([label, bogus.statusCode]).toEqual([label, 401]);
      for (const role of ['viewer', 'submitter', 'admin'] as Role[]) {
        const res = await as(api, keys[role], opts);
        if (rank[role] < rank[e.need]) {
          expect([label, role, res.statusCode]).toEqual([label, role, 403]);
          expect(json(res).message).toContain(`needs the ${e.need} role`);
        } else {
          expect([label, role, res.statusCode === 401 || res.statusCode === 403]).toEqual([label, role, false]);
        }
      }
    }
    // X-API-Key works as well as the bearer header.
    expect((await request(api, { url: '/v1/models', headers: { 'x-api-key': keys.viewer } })).statusCode).toBe(200);
    // Health stays open.
    expect((await as(api, null, { url: '/health/live' })).statusCode).toBe(200);
    expect((await as(api, null, { url: '/health/ready' })).statusCode).toBe(200);
  });

  it('revokes keys at once', async () => {
    const created = json(await request(api, { method: 'POST', url: '/v1/admin/keys', payload: { name: 'ci-runner', role: 'submitter' } }));
    expect((await as(api, created.key, { url: '/v1/models' })).statusCode).toBe(200);
    const revoked = await request(api, { method: 'DELETE', url: `/v1/admin/keys/${created.id}` });
    expect(revoked.statusCode).toBe(200);
    expect(json(revoked)).toMatchObject({ id: created.id, status: 'revoked', revokedAt: expect.any(String) });
    expect((await as(api, created.key, { url: '/v1/models' })).statusCode).toBe(401);
    expect((await request(api, { method: 'DELETE', url: '/v1/admin/keys/00000000-0000-4000-8000-000000000000' })).statusCode).toBe(404);
    const audit = json(await request(api, { url: '/v1/admin/audit?action=key.' })).entries;
    expect(audit.map((e: any) => e.action)).toEqual(['key.revoke', 'key.create', 'key.create', 'key.create', 'key.create', 'key.create']);
    expect(audit[0]).toMatchObject({ subject: `key ${created.id}`, actor: 'admin (ADMIN_API_KEY)', details: { name: 'ci-runner' } });
    // Bad input to key creation is a 400 naming the field.
    const bad = await request(api, { method: 'POST', url: '/v1/admin/keys', payload: { name: 'x', role: 'root' } });
    expect(bad.statusCode).toBe(400);
    expect(json(bad).errors).toEqual([expect.objectContaining({ field: 'role' })]);
  });

  it('revokes on every API instance: cached lookups are dropped on the NOTIFY', async () => {
    const second = await listen(api.config);
    try {
      const created = json(await request(api, { method: 'POST', url: '/v1/admin/keys', payload: { name: 'fleet-poller', role: 'viewer' } }));
      // Warm both instances' caches.
      for (let i = 0; i < 3; i++) {
        expect((await as(api, created.key, { url: '/v1/models' })).statusCode).toBe(200);
        expect((await as(second, created.key, { url: '/v1/models' })).statusCode).toBe(200);
      }
      expect((await request(api, { method: 'DELETE', url: `/v1/admin/keys/${created.id}` })).statusCode).toBe(200);
      expect((await as(api, created.key, { url: '/v1/models' })).statusCode).toBe(401);
      // The other instance learns it from Postgres NOTIFY (delivered on commit): milliseconds.
      const deadline = Date.now() + 1000;
      let status = 0;
      do {
        status = (await as(second, created.key, { url: '/v1/models' })).statusCode;
      } while (status !== 401 && Date.now() < deadline);
      expect(status).toBe(401);
    } finally {
      await second.app.close();
    }
  });

  it('lets everything through as an admin only when AUTH_DISABLED=true (local development)', async () => {
    const open = await listen(await testConfig({ AUTH_DISABLED: 'true' }));
    try {
      expect((await as(open, null, { url: '/v1/admin/keys' })).statusCode).toBe(200);
      const created = await as(open, null, { method: 'POST', url: '/v1/admin/keys', payload: { name: 'dev', role: 'viewer' } });
      expect(created.statusCode).toBe(201);
      const audit = json(await as(open, null, { url: '/v1/admin/audit' })).entries;
      expect(audit[0]).toMatchObject({ action: 'key.create', actor: 'auth-disabled', actorKeyId: null });
    } finally {
      await open.app.close();
    }
  });

  it('creates a key from the CLI, printed once, that works at once', async () => {
    const env = testConfigEnv(config);
    const out = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [CLI, '--name', 'ops-alice'], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('exit', (code) => resolve({ code, stdout, stderr }));
    });
    expect([out.code, out.stderr]).toEqual([0, expect.any(String)]);
    const key = out.stdout.trim();
    expect(key).toMatch(/^pf_[A-Za-z0-9_-]{43}$/);
    expect(out.stderr).toContain('created admin key "ops-alice"');
    expect((await as(api, key, { url: '/v1/admin/keys' })).statusCode).toBe(200);
    const bad = await new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, [CLI], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: 'ignore' });
      child.on('exit', resolve);
    });
    expect(bad).toBe(64);
  });
});
