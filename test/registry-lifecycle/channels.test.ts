/** Channels: promote, rollback, history, audit, the promotion gate, device resolution, deletion rules, concurrency. */
import { cleanupTestConfig } from '../helpers/env.js';
import { json, request, startApi, type ApiUnderTest } from '../api/api-test-kit.js';
import { openRegistry, promote, rollback, seedVersion, type Registry } from './lifecycle-kit.js';

describe('release channels', () => {
  let api: ApiUnderTest;
  let reg: Registry;

  beforeAll(async () => {
    api = await startApi({ GATE_MAX_TOP1_DROP: '1', GATE_MAX_ERROR_RATIO: '2', GATE_MAX_LATENCY_REGRESSION_PCT: '10' });
    reg = await openRegistry(api);
  });
  afterAll(async () => {
    await reg?.close();
    await api?.app.close();
    await cleanupTestConfig();
  });

  it('promotes, rolls back to the previous version, then to a named one, with history and audit', async () => {
    const good = { verification: { passed: true, maxAbsError: 0.001, top1Agreement: 0.995 } };
    const v1 = await seedVersion(reg, 'detector', { sm_80: good, sm_90: good });
    const v2 = await seedVersion(reg, 'detector', { sm_80: good, sm_90: good });
    const v3 = await seedVersion(reg, 'detector', { sm_80: good, sm_90: good });
    expect([v1.version, v2.version, v3.version]).toEqual([1, 2, 3]);

    for (const v of [1, 2, 3]) {
      const res = await promote(api, 'detector', 'production', { version: v, reason: `ship v${v}` });
      expect(res.statusCode).toBe(200);
      expect(json(res).changes.map((c: any) => [c.target, c.from, c.to])).toEqual([
        ['sm_80', v === 1 ? null : v - 1, v],
        ['sm_90', v === 1 ? null : v - 1, v],
      ]);
    }
    // Promoting what is already there changes nothing and records nothing.
    const again = json(await promote(api, 'detector', 'production', { version: 3 }));
    expect(again.changes).toEqual([]);
    expect(again.unchanged).toEqual(['sm_80', 'sm_90']);

    const noReason = await rollback(api, 'detector', 'production', {});
    expect(noReason.statusCode).toBe(400);
    expect(json(noReason).errors).toEqual([expect.objectContaining({ field: 'reason' })]);

    const back = await rollback(api, 'detector', 'production', { reason: 'v3 crashes on Orin' });
    expect(back.statusCode).toBe(200);
    expect(json(back).changes.map((c: any) => [c.target, c.from, c.to, c.action, c.reason])).toEqual([
      ['sm_80', 3, 2, 'rollback', 'v3 crashes on Orin'],
      ['sm_90', 3, 2, 'rollback', 'v3 crashes on Orin'],
    ]);
    // Again: walks further back (to what was live before v2).
    const back2 = json(await rollback(api, 'detector', 'production', { reason: 'v2 too', target: 'sm_90' }));
    expect(back2.changes.map((c: any) => [c.target, c.from, c.to])).toEqual([['sm_90', 2, 1]]);
    const none = await rollback(api, 'detector', 'production', { reason: 'further', target: 'sm_90' });
    expect(none.statusCode).toBe(409);
    expect(json(none).message).toMatch(/no version before 1/);

    const named = json(await rollback(api, 'detector', 'production', { reason: 'pin v3 back', toVersion: 3 }));
    expect(named.changes.map((c: any) => [c.target, c.from, c.to])).toEqual([
      ['sm_80', 2, 3],
      ['sm_90', 1, 3],
    ]);

    const channel = json(await request(api, { url: '/v1/models/detector/channels/production' }));
    expect(channel.pointers.map((p: any) => [p.target, p.version, p.sha256])).toEqual([
      ['sm_80', 3, v3.planSha.sm_80],
      ['sm_90', 3, v3.planSha.sm_90],
    ]);
    for (const target of ['sm_80', 'sm_90']) {
      const h = channel.history.filter((e: any) => e.target === target);
      for (let i = 1; i < h.length; i++) expect(h[i].from).toBe(h[i - 1].to);
      expect(h[h.length - 1].to).toBe(3);
      expect(h.every((e: any) => e.actor === 'admin (ADMIN_API_KEY)' && typeof e.at === 'string')).toBe(true);
    }
    expect(channel.history.filter((e: any) => e.action === 'rollback').map((e: any) => e.reason)).toEqual([
      'v3 crashes on Orin',
      'v3 crashes on Orin',
      'v2 too',
      'pin v3 back',
      'pin v3 back',
    ]);

    const list = json(await request(api, { url: '/v1/models/detector/channels' }));
    expect(list.channels.map((c: any) => [c.channel, c.pointers.length])).toEqual([['production', 2]]);

    const audit = json(await request(api, { url: '/v1/admin/audit?action=channel.' }));
    const actions = audit.entries.map((e: any) => e.action).reverse();
    expect(actions).toEqual([
      'channel.promote',
      'channel.promote',
      'channel.promote',
      'channel.promote',
      'channel.rollback',
      'channel.rollback',
      'channel.rollback',
    ]);
    expect(audit.entries[0]).toMatchObject({ actor: 'admin (ADMIN_API_KEY)', subject: 'model detector channel production', details: { reason: 'pin v3 back', toVersion: 3 } });
    expect(audit.entries[0].requestId).toEqual(expect.any(String));
  });

  it('refuses incomplete candidates, unknown versions and bad names', async () => {
    const partial = await seedVersion(reg, 'partial-model', { sm_80: {}, sm_90: { fail: true } });
    const all = await promote(api, 'partial-model', 'staging', { version: partial.version });
    expect(all.statusCode).toBe(409);
    expect(json(all)).toMatchObject({ code: 'E_NOT_COMPLETE', message: expect.stringMatching(/partial, not complete/) });
    const oneMissing = await promote(api, 'partial-model', 'staging', { version: partial.version, target: 'sm_90' });
    expect(oneMissing.statusCode).toBe(409);
    expect(json(oneMissing).message).toMatch(/not complete for sm_90/);
    // The target that did build can ship on its own.
    expect((await promote(api, 'partial-model', 'staging', { version: partial.version, target: 'sm_80' })).statusCode).toBe(200);

    expect((await promote(api, 'partial-model', 'staging', { version: 99 })).statusCode).toBe(404);
    expect((await promote(api, 'no-such-model', 'staging', { version: 1 })).statusCode).toBe(404);
    expect((await promote(api, 'partial-model', 'Bad Name!', { version: 1 })).statusCode).toBe(400);
    expect((await promote(api, 'partial-model', 'staging', { version: 1, target: 'ampere' })).statusCode).toBe(400);
    expect((await rollback(api, 'partial-model', 'nowhere', { reason: 'x' })).statusCode).toBe(404);
    expect((await request(api, { url: '/v1/models/partial-model/channels/nowhere' })).statusCode).toBe(404);
  });

  it('gates on failed verification, accuracy and latency regressions, with the numbers; admins can force', async () => {
    const base = { verification: { passed: true, maxAbsError: 0.002, top1Agreement: 0.99 }, profile: { p50Ms: 3, p99Ms: 4.0 } };
    const v1 = await seedVersion(reg, 'gated', { sm_86: base });
    expect((await promote(api, 'gated', 'production', { version: v1.version })).statusCode).toBe(200);

    const failed = await seedVersion(reg, 'gated', { sm_86: { verification: { passed: false, maxAbsError: 0.31, top1Agreement: 0.912 } } });
    const r1 = await promote(api, 'gated', 'production', { version: failed.version });
    expect(r1.statusCode).toBe(409);
    expect(json(r1).code).toBe('E_GATE');
    expect(json(r1).message).toMatch(/sm_86: version 2 failed verification \(max abs error 0\.31, top-1 agreement 91\.2%\)/);

    const lessAccurate = await seedVersion(reg, 'gated', { sm_86: { verification: { passed: true, maxAbsError: 0.0021, top1Agreement: 0.975 } } });
    const r2 = await promote(api, 'gated', 'production', { version: lessAccurate.version });
    expect(r2.statusCode).toBe(409);
    expect(json(r2).message).toMatch(/top-1 agreement 97\.5% vs 99% for version 1 \(drop of 1\.5 points > 1 allowed\)/);

    const noisier = await seedVersion(reg, 'gated', { sm_86: { verification: { passed: true, maxAbsError: 0.005, top1Agreement: 0.99 } } });
    const r3 = await promote(api, 'gated', 'production', { version: noisier.version });
    expect(r3.statusCode).toBe(409);
    expect(json(r3).message).toMatch(/max abs error 0\.005 vs 0\.002 for version 1 \(×2\.5 > ×2 allowed\)/);

    const slower = await seedVersion(reg, 'gated', { sm_86: { ...base, profile: { p99Ms: 4.6 } } });
    const r4 = await promote(api, 'gated', 'production', { version: slower.version });
    expect(r4.statusCode).toBe(409);
    expect(json(r4).message).toMatch(/p99 latency 4\.6 ms vs 4 ms for version 1 \(\+15% > \+10% allowed\)/);

    // Within the thresholds: fine.
    const fine = await seedVersion(reg, 'gated', { sm_86: { verification: { passed: true, maxAbsError: 0.003, top1Agreement: 0.985 }, profile: { p99Ms: 4.3 } } });
    expect((await promote(api, 'gated', 'production', { version: fine.version, reason: 'within limits' })).statusCode).toBe(200);

    // Force needs a reason; with one, the refusal is overridden and recorded.
    const noReason = await promote(api, 'gated', 'production', { version: slower.version, force: true });
    expect(noReason.statusCode).toBe(400);
    const forced = await promote(api, 'gated', 'production', { version: failed.version, force: true, reason: 'customer hotfix, accuracy known-bad' });
    expect(forced.statusCode).toBe(200);
    expect(json(forced)).toMatchObject({ forced: true, changes: [{ target: 'sm_86', from: fine.version, to: failed.version, forced: true }] });
    expect(json(forced).changes[0].gate.violations[0]).toMatch(/failed verification/);

    const history = json(await request(api, { url: '/v1/models/gated/channels/production' })).history;
    expect(history.map((e: any) => [e.to, e.forced])).toEqual([
      [v1.version, false],
      [fine.version, false],
      [failed.version, true],
    ]);
    const audit = json(await request(api, { url: '/v1/admin/audit?limit=20' })).entries;
    const refused = audit.filter((e: any) => e.action === 'channel.promote.refused' && e.subject === 'model gated channel production');
    expect(refused).toHaveLength(4);
    const forcedEntry = audit.find((e: any) => e.action === 'channel.promote' && e.details.forced === true);
    expect(forcedEntry.details).toMatchObject({ reason: 'customer hotfix, accuracy known-bad', version: failed.version });
  });

  it('reads the worker verifier\'s field names (passed, maxAbs, top1) too', async () => {
    const v1 = await seedVersion(reg, 'verified', { sm_90: { verification: { passed: true, maxAbs: 0.001, maxRel: 0.01, top1: 1 } } });
    expect((await promote(api, 'verified', 'production', { version: v1.version })).statusCode).toBe(200);
    const worse = await seedVersion(reg, 'verified', { sm_90: { verification: { passed: true, maxAbs: 0.0011, maxRel: 0.01, top1: 0.97 } } });
    const res = await promote(api, 'verified', 'production', { version: worse.version });
    expect(res.statusCode).toBe(409);
    expect(json(res).message).toMatch(/top-1 agreement 97% vs 100% for version 1 \(drop of 3 points > 1 allowed\)/);
  });

  it('resolves a device to its plan with an ETag, 304 while unchanged, 404 naming the targets served', async () => {
    const v1 = await seedVersion(reg, 'fleet', { sm_87: {}, sm_90: {} });
    expect((await promote(api, 'fleet', 'production', { version: v1.version })).statusCode).toBe(200);

    const res = await request(api, { url: '/v1/resolve?model=fleet&channel=production&sm=87&runtime=0.4.2' });
    expect(res.statusCode).toBe(200);
    const body = json(res);
    expect(body).toMatchObject({ model: 'fleet', channel: 'production', version: v1.version, target: 'sm_87', sha256: v1.planSha.sm_87, precision: 'fp16' });
    expect(res.headers.etag).toBe(`"${v1.planSha.sm_87}-v${v1.version}"`);
    const download = await fetch(body.url);
    expect(download.status).toBe(200);
    expect(Buffer.from(await download.arrayBuffer()).toString()).toContain('fleet');

    const same = await request(api, { url: '/v1/resolve?model=fleet&channel=production&sm=sm_87', headers: { 'if-none-match': res.headers.etag as string } });
    expect(same.statusCode).toBe(304);
    expect(same.body).toBe('');

    const v2 = await seedVersion(reg, 'fleet', { sm_87: {}, sm_90: {} });
    await promote(api, 'fleet', 'production', { version: v2.version });
    const changed = await request(api, { url: '/v1/resolve?model=fleet&channel=production&sm=87', headers: { 'if-none-match': res.headers.etag as string } });
    expect(changed.statusCode).toBe(200);
    expect(json(changed).version).toBe(v2.version);

    const wrongSm = await request(api, { url: '/v1/resolve?model=fleet&channel=production&sm=80' });
    expect(wrongSm.statusCode).toBe(404);
    expect(json(wrongSm).message).toMatch(/no plan for sm_80; targets served: sm_87 \(version 2, optimizer [^)]+\), sm_90 \(version 2/);
    const unknownSm = await request(api, { url: '/v1/resolve?model=fleet&channel=production&sm=75' });
    expect(unknownSm.statusCode).toBe(404);
    expect(json(unknownSm).message).toMatch(/sm_75 \(not a target the farm builds/);
    const wrongRuntime = await request(api, { url: '/v1/resolve?model=fleet&channel=production&sm=90&runtime=7.0.0' });
    expect(wrongRuntime.statusCode).toBe(404);
    expect(json(wrongRuntime).message).toMatch(/runtime 7\.0\.0 loads plans of major version 7 only/);
    expect((await request(api, { url: '/v1/resolve?model=fleet&channel=canary&sm=90' })).statusCode).toBe(404);
    expect((await request(api, { url: '/v1/resolve?model=fleet&channel=production' })).statusCode).toBe(400);
  });

  it('deletes versions only when no channel serves them; never edits them', async () => {
    const v1 = await seedVersion(reg, 'retire', { sm_80: {} });
    const v2 = await seedVersion(reg, 'retire', { sm_80: {} });
    await promote(api, 'retire', 'production', { version: v1.version });
    const inUse = await request(api, { method: 'DELETE', url: `/v1/models/retire/versions/${v1.version}` });
    expect(inUse.statusCode).toBe(409);
    expect(json(inUse).message).toMatch(/served by channel "production" \(sm_80\)/);
    const gone = await request(api, { method: 'DELETE', url: `/v1/models/retire/versions/${v2.version}` });
    expect(gone.statusCode).toBe(200);
    expect((await request(api, { url: `/v1/models/retire/versions/${v2.version}` })).statusCode).toBe(404);
    expect((await request(api, { method: 'DELETE', url: `/v1/models/retire/versions/${v2.version}` })).statusCode).toBe(404);
    // No route mutates a version.
    for (const method of ['PUT', 'PATCH']) {
      expect((await request(api, { method, url: `/v1/models/retire/versions/${v1.version}`, payload: { status: 'failed' } })).statusCode).toBe(404);
    }
    const audit = json(await request(api, { url: '/v1/admin/audit?action=version.delete' })).entries;
    expect(audit).toEqual([expect.objectContaining({ subject: `model retire version ${v2.version}` })]);
  });

  it('serializes concurrent promotes and rollbacks of one channel into a linear history', async () => {
    const versions: number[] = [];
    for (let i = 0; i < 6; i++) versions.push((await seedVersion(reg, 'racer', { sm_80: {}, sm_90: {} })).version);
    await promote(api, 'racer', 'production', { version: versions[0] });
    const ops = Array.from({ length: 20 }, (_, i) =>
      i % 5 === 4
        ? rollback(api, 'racer', 'production', { reason: `race ${i}`, toVersion: versions[i % versions.length] })
        : promote(api, 'racer', 'production', { version: versions[(i * 7 + 1) % versions.length], reason: `race ${i}` }),
    );
    const results = await Promise.all(ops);
    for (const r of results) expect(r.statusCode).toBe(200);
    const channel = json(await request(api, { url: '/v1/models/racer/channels/production' }));
    for (const target of ['sm_80', 'sm_90']) {
      const h = channel.history.filter((e: any) => e.target === target);
      expect(h.length).toBeGreaterThan(10);
      expect(h[0].from).toBeNull();
      for (let i = 1; i < h.length; i++) {
        expect(h[i].from).toBe(h[i - 1].to);
        expect(h[i].id).toBeGreaterThan(h[i - 1].id);
      }
      expect(channel.pointers.find((p: any) => p.target === target).version).toBe(h[h.length - 1].to);
    }
  });
});
