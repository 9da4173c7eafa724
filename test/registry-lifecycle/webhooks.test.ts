/** CI webhooks: GitHub, GitLab and generic signatures as those services send them, replays, allow-lists. */
import { createHmac, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanupTestConfig } from '../helpers/env.js';
import { tinyConvNet } from '../helpers/onnx-builder.js';
import { json, request, sql, startApi, type ApiUnderTest, type HttpResult } from '../api/api-test-kit.js';
import { signGeneric } from '../../apps/api/src/services/webhook-signatures.js';
import { ObjectStorage } from '../../libs/storage/index.js';

const GITHUB_SECRET = 'gh-secret-0123456789abcdef';
const GITLAB_SECRET = 'gl-token-0123456789abcdef';
const GENERIC_SECRET = 'generic-secret-0123456789';
const COMMIT = 'a94a8fe5ccb19ba61c4c0873d391e987982fbbd3';

function github(api: ApiUnderTest, event: string, payload: unknown, opts: { delivery?: string; secret?: string; signature?: string | null; contentType?: string } = {}): Promise<HttpResult> {
  const text = JSON.stringify(payload);
  const body = opts.contentType === 'application/x-www-form-urlencoded' ? `payload=${encodeURIComponent(text)}` : text;
  const signature = `sha256=${createHmac('sha256', opts.secret ?? GITHUB_SECRET).update(body).digest('hex')}`;
  const headers: Record<string, string> = {
    'content-type': opts.contentType ?? 'application/json',
    'user-agent': 'GitHub-Hookshot/abc1234',
    'x-github-event': event,
    'x-github-delivery': opts.delivery ?? randomUUID(),
    'x-github-hook-id': '123456',
  };
  if (opts.signature !== null) headers['x-hub-signature-256'] = opts.signature ?? signature;
  return request(api, { method: 'POST', url: '/v1/webhooks/github', headers, payload: body, anonymous: true });
}

function gitlab(api: ApiUnderTest, event: string, payload: unknown, opts: { token?: string | null; uuid?: string } = {}): Promise<HttpResult> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': 'GitLab/17.5.0',
    'x-gitlab-event': event,
    'x-gitlab-event-uuid': opts.uuid ?? randomUUID(),
    'x-gitlab-instance': 'https://gitlab.example.com',
  };
  if (opts.token !== null) headers['x-gitlab-token'] = opts.token ?? GITLAB_SECRET;
  return request(api, { method: 'POST', url: '/v1/webhooks/gitlab', headers, payload: JSON.stringify(payload), anonymous: true });
}

function generic(api: ApiUnderTest, payload: unknown, opts: { delivery?: string; timestamp?: number; secret?: string } = {}): Promise<HttpResult> {
  const body = JSON.stringify(payload);
  return request(api, {
    method: 'POST',
    url: '/v1/webhooks/generic',
    headers: {
      'content-type': 'application/json',
      'x-planforge-signature': signGeneric(opts.secret ?? GENERIC_SECRET, body, opts.timestamp),
      'x-planforge-delivery': opts.delivery ?? randomUUID(),
    },
    payload: body,
    anonymous: true,
  });
}

const pushTag = (repository: string, tag: string) => ({
  ref: `refs/tags/${tag}`,
  before: '0000000000000000000000000000000000000000',
  after: COMMIT,
  created: true,
  deleted: false,
  forced: false,
  base_ref: null,
  repository: { id: 1, name: repository.split('/')[1], full_name: repository, private: true },
  pusher: { name: 'octocat' },
  head_commit: { id: COMMIT, message: 'release' },
});

describe('CI webhooks', () => {
  let api: ApiUnderTest;
  let modelServer: http.Server;
  let modelOrigin: string;
  let modelRequests: string[] = [];
  const model = tinyConvNet();

  beforeAll(async () => {
    api = await startApi({ WEBHOOK_ALLOW_INSECURE_HTTP: 'true' });
    modelServer = http.createServer((req, res) => {
      modelRequests.push(req.url ?? '');
      if (req.url?.startsWith('/redirect/')) {
        // An allowed host bouncing the download to a host that is not allowed.
        const port = (modelServer.address() as AddressInfo).port;
        res.writeHead(302, { location: `http://localhost:${port}/models/evil.onnx` }).end();
      } else if (req.url?.startsWith('/models/')) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': model.length }).end(model);
      } else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => modelServer.listen(0, '127.0.0.1', resolve));
    modelOrigin = `127.0.0.1:${(modelServer.address() as AddressInfo).port}`;

    const triggers = [
      {
        provider: 'github',
        repository: 'acme/detector',
        secret: GITHUB_SECRET,
        model: 'detector',
        spec: { targets: ['sm_90'], precision: 'fp16' },
        source: { type: 'url', urlTemplate: `http://${modelOrigin}/models/{repository}/{tag}/model.onnx?commit={commit}`, allowedHosts: [modelOrigin] },
      },
      {
        provider: 'github',
        repository: 'acme/bouncer',
        secret: GITHUB_SECRET,
        model: 'bouncer',
        spec: { targets: ['sm_90'] },
        source: { type: 'url', urlTemplate: `http://${modelOrigin}/redirect/{tag}`, allowedHosts: [modelOrigin] },
      },
      {
        provider: 'gitlab',
        repository: 'ml/vision/classifier',
        secret: GITLAB_SECRET,
        model: 'classifier',
        spec: { targets: ['sm_87'] },
        source: { type: 's3', keyTemplate: 'models/{repository}/{tag}/model.onnx' },
      },
      {
        provider: 'generic',
        repository: 'acme/generic',
        secret: GENERIC_SECRET,
        model: 'generic-model',
        spec: { targets: ['sm_80'] },
        source: { type: 'url', urlTemplate: `http://${modelOrigin}/models/{tag}.onnx`, allowedHosts: [modelOrigin] },
      },
    ];
    for (const t of triggers) {
      const res = await request(api, { method: 'POST', url: '/v1/admin/triggers', payload: t });
      if (res.statusCode !== 201) throw new Error(`trigger ${t.repository}: ${res.statusCode} ${res.body}`);
      expect(res.body).not.toContain(t.secret);
    }
    // GitLab's trigger reads the model from the farm's bucket.
    const storage = new ObjectStorage(api.config.s3);
    const dir = mkdtempSync(join(tmpdir(), 'wh-'));
    try {
      writeFileSync(join(dir, 'm.onnx'), model);
      await storage.uploadFile('models/ml/vision/classifier/v2.0/model.onnx', join(dir, 'm.onnx'));
    } finally {
      await storage.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
  afterAll(async () => {
    await new Promise((resolve) => modelServer?.close(resolve));
    await api?.app.close();
    await cleanupTestConfig();
  });

  const buildCount = async () => (await sql<{ n: number }>(api.config, 'SELECT count(*)::int AS n FROM builds'))[0].n;

  it('manages triggers without ever returning their secrets', async () => {
    const listed = await request(api, { url: '/v1/admin/triggers' });
    expect(json(listed).triggers.map((t: any) => [t.provider, t.repository, t.model])).toEqual([
      ['generic', 'acme/generic', 'generic-model'],
      ['github', 'acme/bouncer', 'bouncer'],
      ['github', 'acme/detector', 'detector'],
      ['gitlab', 'ml/vision/classifier', 'classifier'],
    ]);
    for (const s of [GITHUB_SECRET, GITLAB_SECRET, GENERIC_SECRET]) expect(listed.body).not.toContain(s);
    const dup = await request(api, {
      method: 'POST',
      url: '/v1/admin/triggers',
      payload: { provider: 'generic', repository: 'acme/generic', secret: GENERIC_SECRET, model: 'x', spec: { targets: ['sm_80'] }, source: { type: 's3', keyTemplate: 'k' } },
    });
    expect(dup.statusCode).toBe(409);
    const offList = await request(api, {
      method: 'POST',
      url: '/v1/admin/triggers',
      payload: { provider: 'generic', repository: 'acme/other', secret: GENERIC_SECRET, model: 'x', spec: { targets: ['sm_80'] }, source: { type: 'url', urlTemplate: 'https://evil.example.com/{tag}.onnx', allowedHosts: ['models.example.com'] } },
    });
    expect(offList.statusCode).toBe(400);
    expect(json(offList).message).toMatch(/host "evil\.example\.com" is not on allowedHosts/);
    const badSpec = await request(api, {
      method: 'POST',
      url: '/v1/admin/triggers',
      payload: { provider: 'generic', repository: 'acme/other', secret: GENERIC_SECRET, model: 'x', spec: { targets: ['sm_75'] }, source: { type: 's3', keyTemplate: 'k/{nope}' } },
    });
    expect(badSpec.statusCode).toBe(400);
    expect(json(badSpec).errors[0].field).toBe('spec.targets.0');
    const created = json(
      await request(api, {
        method: 'POST',
        url: '/v1/admin/triggers',
        payload: { provider: 'gitlab', repository: 'tmp/deleteme', secret: GITLAB_SECRET, model: 'x', spec: { targets: ['sm_80'] }, source: { type: 's3', keyTemplate: 'm/{tag}' } },
      }),
    );
    expect((await request(api, { method: 'DELETE', url: `/v1/admin/triggers/${created.id}` })).statusCode).toBe(200);
    expect((await request(api, { method: 'DELETE', url: `/v1/admin/triggers/${created.id}` })).statusCode).toBe(404);
  });

  it('GitHub: ping, tag push builds with provenance, replay is a duplicate, bad signatures are 401', async () => {
    const ping = await github(api, 'ping', { zen: 'Keep it logically awesome.', hook_id: 1, repository: { full_name: 'acme/detector' } });
    expect(ping.statusCode).toBe(200);
    expect(json(ping)).toMatchObject({ pong: true });

    const delivery = randomUUID();
    const res = await github(api, 'push', pushTag('acme/detector', 'v1.2.0'), { delivery });
    expect(res.statusCode).toBe(202);
    const body = json(res);
    expect(body).toMatchObject({ duplicate: false, model: 'detector', version: 1, status: 'queued', tag: 'v1.2.0', commit: COMMIT });
    expect(modelRequests).toContain(`/models/acme/detector/v1.2.0/model.onnx?commit=${COMMIT}`);
    const [version] = await sql<{ source: any; spec: any }>(api.config, `SELECT source, spec FROM model_versions WHERE build_id = $1`, [body.buildId]);
    expect(version.source).toMatchObject({ type: 'webhook', provider: 'github', repository: 'acme/detector', ref: 'refs/tags/v1.2.0', tag: 'v1.2.0', commit: COMMIT, deliveryId: delivery });
    expect(version.spec).toMatchObject({ model: 'detector', precision: 'fp16', labels: { 'git.repository': 'acme/detector', 'git.tag': 'v1.2.0', 'git.commit': COMMIT } });
    // Same path as POST /v1/builds: the build is queued and visible.
    const build = json(await request(api, { url: `/v1/builds/${body.buildId}` }));
    expect(build).toMatchObject({ model: 'detector', status: 'queued', targets: [expect.objectContaining({ target: 'sm_90', status: 'queued' })] });

    const before = await buildCount();
    const replay = await github(api, 'push', pushTag('acme/detector', 'v1.2.0'), { delivery });
    expect(replay.statusCode).toBe(200);
    expect(json(replay)).toEqual({ duplicate: true, buildId: body.buildId, deliveryId: delivery });
    expect(await buildCount()).toBe(before);

    expect((await github(api, 'push', pushTag('acme/detector', 'v9'), { signature: null })).statusCode).toBe(401);
    expect((await github(api, 'push', pushTag('acme/detector', 'v9'), { secret: 'the-wrong-secret-000000' })).statusCode).toBe(401);
    expect((await github(api, 'push', pushTag('acme/detector', 'v9'), { signature: 'sha256=' + '0'.repeat(64) })).statusCode).toBe(401);
    expect((await github(api, 'push', pushTag('acme/detector', 'v9'), { signature: 'sha1=0123' })).statusCode).toBe(401);
    expect(await buildCount()).toBe(before);
  });

  it('GitHub: releases build when published; branches and other events are ignored; unknown repositories are 404', async () => {
    const release = (action: string) => ({
      action,
      release: { tag_name: 'v2.0.0', target_commitish: 'main', draft: false, prerelease: false },
      repository: { full_name: 'acme/detector' },
    });
    const published = await github(api, 'release', release('published'), { contentType: 'application/x-www-form-urlencoded' });
    expect(published.statusCode).toBe(202);
    expect(json(published)).toMatchObject({ model: 'detector', tag: 'v2.0.0', commit: null });

    const created = await github(api, 'release', release('created'));
    expect(created.statusCode).toBe(202);
    expect(json(created)).toMatchObject({ ignored: true, reason: expect.stringMatching(/only published releases/) });
    const branch = await github(api, 'push', { ...pushTag('acme/detector', 'x'), ref: 'refs/heads/main' });
    expect(json(branch)).toMatchObject({ ignored: true, reason: expect.stringMatching(/refs\/heads\/main/) });
    const deleted = await github(api, 'push', { ...pushTag('acme/detector', 'v1.2.0'), deleted: true, after: '0'.repeat(40) });
    expect(json(deleted)).toMatchObject({ ignored: true });
    const issues = await github(api, 'issues', { action: 'opened', repository: { full_name: 'acme/detector' } });
    expect(issues.statusCode).toBe(202);
    expect(json(issues).reason).toMatch(/"issues" is not handled/);

    const unknown = await github(api, 'push', pushTag('acme/unknown', 'v1'));
    expect(unknown.statusCode).toBe(404);
  });

  it('refuses a model host that is not on the allow-list (also after a redirect) and builds nothing', async () => {
    const before = await buildCount();
    const delivery = randomUUID();
    const res = await github(api, 'push', pushTag('acme/bouncer', 'v1'), { delivery });
    expect(res.statusCode).toBe(422);
    expect(json(res)).toMatchObject({ code: 'E_HOST_NOT_ALLOWED', message: expect.stringMatching(/host "localhost:\d+" is not on the trigger's allow-list/) });
    expect(modelRequests).toContain('/redirect/v1');
    expect(modelRequests).not.toContain('/models/evil.onnx');
    expect(await buildCount()).toBe(before);
    // Nothing was built, so the provider's redelivery is not a duplicate: it is refused again.
    expect((await github(api, 'push', pushTag('acme/bouncer', 'v1'), { delivery })).statusCode).toBe(422);
  });

  it('GitLab: Tag Push Hook with X-Gitlab-Token builds from the bucket; wrong tokens are 401', async () => {
    const payload = {
      object_kind: 'tag_push',
      event_name: 'tag_push',
      before: '0000000000000000000000000000000000000000',
      after: COMMIT,
      ref: 'refs/tags/v2.0',
      checkout_sha: COMMIT,
      project: { id: 15, name: 'classifier', path_with_namespace: 'ml/vision/classifier' },
      repository: { name: 'classifier' },
    };
    const uuid = randomUUID();
    const res = await gitlab(api, 'Tag Push Hook', payload, { uuid });
    expect(res.statusCode).toBe(202);
    expect(json(res)).toMatchObject({ model: 'classifier', version: 1, tag: 'v2.0', commit: COMMIT });
    const replay = await gitlab(api, 'Tag Push Hook', payload, { uuid });
    expect(replay.statusCode).toBe(200);
    expect(json(replay)).toMatchObject({ duplicate: true, buildId: json(res).buildId });

    expect((await gitlab(api, 'Tag Push Hook', payload, { token: null })).statusCode).toBe(401);
    expect((await gitlab(api, 'Tag Push Hook', payload, { token: 'wrong' })).statusCode).toBe(401);
    const push = await gitlab(api, 'Push Hook', { ...payload, object_kind: 'push', ref: 'refs/heads/main' });
    expect(push.statusCode).toBe(202);
    expect(json(push)).toMatchObject({ ignored: true });
    const missing = await gitlab(api, 'Tag Push Hook', { ...payload, ref: 'refs/tags/v404' });
    expect(missing.statusCode).toBe(422);
    expect(json(missing).message).toMatch(/no object at "models\/ml\/vision\/classifier\/v404\/model\.onnx"/);
  });

  it('generic: Stripe-style t=,v1= signatures; stale timestamps and replays', async () => {
    const payload = { repository: 'acme/generic', tag: 'r7', commit: COMMIT };
    const delivery = randomUUID();
    const res = await generic(api, payload, { delivery });
    expect(res.statusCode).toBe(202);
    expect(json(res)).toMatchObject({ model: 'generic-model', tag: 'r7' });
    expect(modelRequests).toContain('/models/r7.onnx');
    const replay = await generic(api, payload, { delivery });
    expect(json(replay)).toMatchObject({ duplicate: true, buildId: json(res).buildId });

    const stale = await generic(api, payload, { timestamp: Math.floor(Date.now() / 1000) - 400 });
    expect(stale.statusCode).toBe(401);
    expect(json(stale).message).toMatch(/\d+ s old \(tolerance 300 s\)/);
    expect((await generic(api, payload, { secret: 'not-the-secret-at-all' })).statusCode).toBe(401);
    const unsigned = await request(api, {
      method: 'POST',
      url: '/v1/webhooks/generic',
      headers: { 'content-type': 'application/json', 'x-planforge-delivery': randomUUID() },
      payload: JSON.stringify(payload),
      anonymous: true,
    });
    expect(unsigned.statusCode).toBe(401);
    // The signature covers the exact bytes: re-serialized JSON with other spacing does not verify.
    const body = JSON.stringify(payload);
    const tampered = await request(api, {
      method: 'POST',
      url: '/v1/webhooks/generic',
      headers: { 'content-type': 'application/json', 'x-planforge-signature': signGeneric(GENERIC_SECRET, body), 'x-planforge-delivery': randomUUID() },
      payload: JSON.stringify(payload, null, 2),
      anonymous: true,
    });
    expect(tampered.statusCode).toBe(401);
  });

  it('caps webhook bodies at 1 MiB', async () => {
    const big = JSON.stringify({ repository: 'acme/generic', tag: 'r8', padding: 'x'.repeat(1024 * 1024) });
    const res = await request(api, {
      method: 'POST',
      url: '/v1/webhooks/generic',
      headers: { 'content-type': 'application/json', 'x-planforge-signature': signGeneric(GENERIC_SECRET, big), 'x-planforge-delivery': randomUUID() },
      payload: big,
      anonymous: true,
    });
    expect(res.statusCode).toBe(413);
  });
});
