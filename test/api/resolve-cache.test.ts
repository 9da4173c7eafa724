/**
 * The in-process resolve cache: results come from memory while the instance
 * LISTENs to planforge_resolve_changed (sent by database triggers on every write
 * that can change a resolve), and are never stale after a channel move on the
 * same instance, a move through another instance, manual SQL, a lost listener
 * or a canary state change.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import pg from 'pg';
import { RESOLVE_CHANGED_CHANNEL, RESOLVE_LISTENER_APPLICATION_NAME, ResolveCacheRepository } from '../../apps/api/src/repositories/resolve-cache.repository.js';
import { canaryBucket } from '../../apps/api/src/rollout/rollout-canary.js';
import { planEtag } from '../../apps/api/src/services/resolve.service.js';
import { RolloutRepository } from '../../libs/registry/index.js';
import { cleanupTestConfig } from '../helpers/env.js';
import { openRegistry, promote, rollback, seedVersion, type Registry } from '../registry-lifecycle/lifecycle-kit.js';
import { json, listen, request, sql, startApi, type ApiUnderTest } from './api-test-kit.js';

interface Resolved {
  status: number;
  version: number | null;
  etag: string;
  cohort: string | null;
}

async function resolveOn(api: ApiUnderTest, model: string, opts: { sm?: string; device?: string; channel?: string } = {}): Promise<Resolved> {
  const device = opts.device ? `&device=${opts.device}` : '';
  const res = await request(api, { url: `/v1/resolve?model=${model}&channel=${opts.channel ?? 'production'}&sm=${opts.sm ?? '86'}${device}` });
  const body = res.statusCode === 200 ? json(res) : null;
  return { status: res.statusCode, version: body?.version ?? null, etag: String(res.headers.etag), cohort: body?.canary?.cohort ?? null };
}

/** Counts this instance's database resolves and cache invalidations (wrapping the Nest singletons). */
function instrument(api: ApiUnderTest) {
  const cache = api.app.get(ResolveCacheRepository);
  const repo = api.app.get(RolloutRepository);
  let queries = 0;
  let invalidations = 0;
  const gates: { answered: () => void; released: Promise<void> }[] = [];
  const resolve = repo.resolve.bind(repo);
  repo.resolve = async (...args: Parameters<RolloutRepository['resolve']>) => {
    queries++;
    const gate = gates.shift();
    const result = await resolve(...args);
    if (gate) {
      gate.answered();
      await gate.released;
    }
    return result;
  };
  const invalidate = cache.invalidate.bind(cache);
  cache.invalidate = () => {
    invalidations++;
    invalidate();
  };
  /** Holds the next database resolve's answer back (after Postgres answered) until release(). */
  const holdNext = () => {
    let answered!: () => void;
    let release!: () => void;
    const hasAnswered = new Promise<void>((r) => (answered = r));
    gates.push({ answered, released: new Promise<void>((r) => (release = r)) });
    return { hasAnswered, release };
  };
  return { cache, queries: () => queries, invalidations: () => invalidations, holdNext };
}

async function until<T>(what: string, probe: () => Promise<T | null | undefined | false> | T | null | undefined | false, timeoutMs = 2000, everyMs = 5): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Versions 1..n of a model with a plan for sm_86 (and sm_90), version 1 live on "production". */
async function modelWithVersions(api: ApiUnderTest, reg: Registry, model: string, n: number) {
  const seeded = [];
  for (let i = 0; i < n; i++) seeded.push(await seedVersion(reg, model, { sm_86: {}, sm_90: {} }));
  const res = await promote(api, model, 'production', { version: 1 });
  if (res.statusCode !== 200) throw new Error(`promote answered ${res.statusCode}: ${res.body}`);
  return seeded;
}

describe('resolve cache', () => {
  let api: ApiUnderTest;
  let reg: Registry;
  let a: ReturnType<typeof instrument>;

  beforeAll(async () => {
    api = await startApi();
    reg = await openRegistry(api);
    a = instrument(api);
    await until('the resolve listener', () => a.cache.isListening);
  });
  afterAll(async () => {
    await reg?.close();
    await api?.app.close();
    await cleanupTestConfig();
  });

  it('serves repeated resolves from memory, and a promotion or rollback on the same instance at once', async () => {
    const seeded = await modelWithVersions(api, reg, 'same-instance', 3);
    expect(await resolveOn(api, 'same-instance')).toMatchObject({ status: 200, version: 1, etag: planEtag(seeded[0].planSha.sm_86, 1) });
    const before = a.queries();
    for (let i = 0; i < 20; i++) expect((await resolveOn(api, 'same-instance')).version).toBe(1);
    expect(a.queries()).toBe(before);
    // ETag revalidation still works from the cache.
    const revalidated = await request(api, { url: '/v1/resolve?model=same-instance&channel=production&sm=86', headers: { 'if-none-match': planEtag(seeded[0].planSha.sm_86, 1) } });
    expect(revalidated.statusCode).toBe(304);

    expect((await promote(api, 'same-instance', 'production', { version: 2 })).statusCode).toBe(200);
    expect(await resolveOn(api, 'same-instance')).toMatchObject({ status: 200, version: 2, etag: planEtag(seeded[1].planSha.sm_86, 2) });
    expect((await rollback(api, 'same-instance', 'production', { reason: 'back' })).statusCode).toBe(200);
    expect(await resolveOn(api, 'same-instance')).toMatchObject({ status: 200, version: 1 });
    // A commit's NOTIFY often reaches the listener after the COMMIT's reply (measured: a third of
    // the time or more): this instance's own moves must not wait for it. Hold the listener's
    // notifications back (its socket paused) while moving the channel.
    expect((await resolveOn(api, 'same-instance')).version).toBe(1);
    const socket = (a.cache as unknown as { listener: { client: { connection: { stream: { pause(): void; resume(): void } } } } }).listener.client.connection.stream;
    socket.pause();
    try {
      const held = a.invalidations();
      expect((await promote(api, 'same-instance', 'production', { version: 2 })).statusCode).toBe(200);
      expect((await resolveOn(api, 'same-instance')).version).toBe(2);
      expect((await rollback(api, 'same-instance', 'production', { reason: 'back again' })).statusCode).toBe(200);
      expect((await resolveOn(api, 'same-instance')).version).toBe(1);
      expect((await resolveOn(api, 'same-instance')).version).toBe(1);
      expect(a.invalidations()).toBe(held + 2);
    } finally {
      socket.resume();
    }
    // Per target: moving sm_90 alone leaves sm_86 where it was.
    expect((await promote(api, 'same-instance', 'production', { version: 3, target: 'sm_90' })).statusCode).toBe(200);
    expect((await resolveOn(api, 'same-instance', { sm: '90' })).version).toBe(3);
    expect((await resolveOn(api, 'same-instance')).version).toBe(1);
  });

  it('never answers the old version after a move returned, while other requests keep the cache busy', async () => {
    await modelWithVersions(api, reg, 'busy', 2);
    let stop = false;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    // Background pollers: their lookups race with the moves (queries started before a commit).
    const pollers = Array.from({ length: 4 }, async () => {
      while (!stop) {
        await new Promise<void>((resolve) => {
          const req = http.request(new URL('/v1/resolve?model=busy&channel=production&sm=86', api.baseUrl), { agent, headers: { authorization: `Bearer ${api.apiKey}` } }, (res) => {
            res.resume();
            res.on('end', () => resolve());
          });
          req.on('error', () => resolve());
          req.end();
        });
      }
    });
    try {
      for (let i = 0; i < 12; i++) {
        const to = i % 2 === 0 ? 2 : 1;
        expect((await promote(api, 'busy', 'production', { version: to })).statusCode).toBe(200);
        for (let j = 0; j < 3; j++) expect((await resolveOn(api, 'busy')).version).toBe(to);
      }
    } finally {
      stop = true;
      await Promise.all(pollers);
      agent.destroy();
    }
  });

  it('does not store an answer read before a commit that it learns of later, nor share it with later lookups', async () => {
    await modelWithVersions(api, reg, 'straddle', 2);
    a.cache.invalidate();
    // A lookup whose query ran before the move, and whose answer is processed after it (and its NOTIFY).
    const held = a.holdNext();
    const early = resolveOn(api, 'straddle');
    await held.hasAnswered;
    const n = a.invalidations();
    expect((await promote(api, 'straddle', 'production', { version: 2 })).statusCode).toBe(200);
    await until('the NOTIFY (and the local invalidation)', () => a.invalidations() >= n + 2, 1000);
    // A lookup started now does not wait for (nor take) the early one's answer.
    const later = await Promise.race([resolveOn(api, 'straddle'), new Promise<'blocked'>((r) => setTimeout(() => r('blocked'), 1000))]);
    held.release();
    expect(later).toMatchObject({ version: 2 });
    // The early request answers what it read: it was sent before the move.
    expect((await early).version).toBe(1);
    // …but its answer was not stored.
    expect((await resolveOn(api, 'straddle')).version).toBe(2);
    expect((await resolveOn(api, 'straddle')).version).toBe(2);
  });

  it('invalidates another API instance through the NOTIFY', async () => {
    const second = await listen(api.config);
    try {
      const b = instrument(second);
      await until('the second instance to listen', () => b.cache.isListening);
      await modelWithVersions(api, reg, 'fleet', 3);
      // Warm the second instance: later resolves do not query.
      expect((await resolveOn(second, 'fleet')).version).toBe(1);
      const queries = b.queries();
      for (let i = 0; i < 5; i++) expect((await resolveOn(second, 'fleet')).version).toBe(1);
      expect(b.queries()).toBe(queries);

      // After the NOTIFY has arrived, the next resolve is right at once.
      let notified = b.invalidations();
      expect((await promote(api, 'fleet', 'production', { version: 2 })).statusCode).toBe(200);
      await until('the second instance to be notified', () => b.invalidations() > notified, 1000);
      expect((await resolveOn(second, 'fleet')).version).toBe(2);

      // Polling without waiting for anything: the new version within a short bounded time.
      notified = b.invalidations();
      expect((await rollback(api, 'fleet', 'production', { reason: 'undo', toVersion: 3 })).statusCode).toBe(200);
      const started = Date.now();
      await until('the second instance to serve version 3', async () => (await resolveOn(second, 'fleet')).version === 3, 1000, 0);
      expect(Date.now() - started).toBeLessThan(1000);
      expect(b.invalidations()).toBeGreaterThan(notified);
    } finally {
      await second.app.close();
    }
  });

  it('invalidates on manual SQL against every table the resolve reads, and not on columns it does not read', async () => {
    const seeded = await modelWithVersions(api, reg, 'manual', 2);
    const warm = async () => {
      await resolveOn(api, 'manual');
      const q = a.queries();
      await resolveOn(api, 'manual');
      expect(a.queries()).toBe(q);
    };
    /** Runs a statement on its own connection, then waits for this instance's invalidation. */
    const change = async (text: string, params: unknown[] = []) => {
      const n = a.invalidations();
      await sql(api.config, text, params);
      await until(`an invalidation after ${text}`, () => a.invalidations() > n, 1000);
    };
    const [v1, v2] = seeded;
    const plan2: { id: string }[] = await sql(api.config, `SELECT id FROM plans WHERE model_version_id = $1 AND target = 'sm_86'`, [v2.versionId]);

    await warm();
    await change(
      `UPDATE channel_pointers SET model_version_id = $1, plan_id = $2 WHERE target = 'sm_86' AND channel_id = (SELECT c.id FROM channels c JOIN models m ON m.id = c.model_id WHERE m.name = 'manual')`,
      [v2.versionId, plan2[0].id],
    );
    expect(await resolveOn(api, 'manual')).toMatchObject({ version: 2, etag: planEtag(v2.planSha.sm_86, 2) });

    await warm();
    const newSha = randomBytes(32).toString('hex');
    await change(`UPDATE plans SET sha256 = $1 WHERE id = $2`, [newSha, plan2[0].id]);
    expect((await resolveOn(api, 'manual')).etag).toBe(planEtag(newSha, 2));

    await warm();
    await change(`UPDATE model_versions SET version = 20 WHERE id = $1`, [v2.versionId]);
    expect((await resolveOn(api, 'manual')).version).toBe(20);

    await warm();
    await change(`UPDATE models SET name = 'manual-renamed' WHERE name = 'manual'`);
    expect((await resolveOn(api, 'manual')).status).toBe(404);
    expect((await resolveOn(api, 'manual-renamed')).version).toBe(20);

    await change(`UPDATE channels SET name = 'prod' WHERE name = 'production' AND model_id = (SELECT id FROM models WHERE name = 'manual-renamed')`);
    expect((await resolveOn(api, 'manual-renamed')).status).toBe(404);
    expect((await resolveOn(api, 'manual-renamed', { channel: 'prod' })).version).toBe(20);

    const q = a.queries();
    await resolveOn(api, 'manual-renamed', { channel: 'prod' });
    expect(a.queries()).toBe(q);
    await change(`DELETE FROM channel_pointers WHERE plan_id = $1`, [plan2[0].id]);
    expect((await resolveOn(api, 'manual-renamed', { channel: 'prod' })).status).toBe(404);

    // Writes of columns the resolve does not read send nothing (statement-level triggers with column lists).
    const listener = new pg.Client({ connectionString: api.config.databaseUrl });
    await listener.connect();
    try {
      const payloads: string[] = [];
      listener.on('notification', (n) => payloads.push(n.payload ?? ''));
      await listener.query(`LISTEN ${RESOLVE_CHANGED_CHANNEL}`);
      await sql(api.config, `UPDATE plans SET profile = '{"p99Ms": 1}' WHERE id = $1`, [plan2[0].id]);
      await sql(api.config, `UPDATE model_versions SET status = status WHERE id = $1`, [v1.versionId]);
      await sql(api.config, `UPDATE channels SET updated_at = now()`);
      await sql(api.config, `UPDATE rollouts SET reason = reason`);
      await sql(api.config, `INSERT INTO models (name) VALUES ('manual-inserted')`);
      // Delivered in commit order: everything before the marker came from the writes above.
      await sql(api.config, `SELECT pg_notify($1, 'marker')`, [RESOLVE_CHANGED_CHANNEL]);
      await until('the marker', () => payloads.includes('marker'), 2000);
      expect(payloads).toEqual(['marker']);

      // TRUNCATE notifies too (the last statement: it empties every channel).
      const n = a.invalidations();
      await resolveOn(api, 'same-instance');
      await sql(api.config, `TRUNCATE channel_pointers`);
      await until('the marker', () => payloads.length === 2, 2000);
      expect(payloads).toEqual(['marker', '']);
      await until('an invalidation', () => a.invalidations() > n, 1000);
      expect((await resolveOn(api, 'same-instance')).status).toBe(404);
    } finally {
      await listener.end();
    }
  });

  it('stays correct without its listener (uncached) and listens again', async () => {
    await modelWithVersions(api, reg, 'unplugged', 3);
    const setPointer = async (version: number) => {
      await sql(
        api.config,
        `UPDATE channel_pointers p SET model_version_id = v.id, plan_id = pl.id
         FROM channels c, models m, model_versions v, plans pl
         WHERE p.channel_id = c.id AND c.model_id = m.id AND m.name = 'unplugged' AND c.name = 'production' AND p.target = 'sm_86'
           AND v.model_id = m.id AND v.version = $1 AND pl.model_version_id = v.id AND pl.target = 'sm_86'`,
        [version],
      );
    };
    expect((await resolveOn(api, 'unplugged')).version).toBe(1);
    const killed: unknown[] = await sql(api.config, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()`, [
      RESOLVE_LISTENER_APPLICATION_NAME,
    ]);
    expect(killed).toHaveLength(1);
    await until('the listener to be lost', () => !a.cache.isListening, 2000);
    // Down: every resolve queries, and sees a change at once.
    const q = a.queries();
    await setPointer(2);
    expect((await resolveOn(api, 'unplugged')).version).toBe(2);
    expect((await resolveOn(api, 'unplugged')).version).toBe(2);
    expect(a.queries()).toBe(q + 2);
    // It reconnects (1 s later) and caches again.
    await until('the listener to be back', () => a.cache.isListening, 5000, 20);
    expect((await resolveOn(api, 'unplugged')).version).toBe(2);
    const cachedFrom = a.queries();
    expect((await resolveOn(api, 'unplugged')).version).toBe(2);
    expect(a.queries()).toBe(cachedFrom);
    // …and is invalidated again by the database.
    const n = a.invalidations();
    await setPointer(3);
    await until('an invalidation', () => a.invalidations() > n, 1000);
    expect((await resolveOn(api, 'unplugged')).version).toBe(3);
  });

  it('follows canary rollouts: start, share change, completion and rollback', async () => {
    const seeded = await modelWithVersions(api, reg, 'canary', 2);
    const devices = Array.from({ length: 400 }, (_, i) => `dev-${i}`);
    const canaryDevice = devices.find((d) => canaryBucket(d, 'production', 2) < 1000)!;
    const stableDevice = devices.find((d) => canaryBucket(d, 'production', 2) >= 5000)!;
    const middleDevice = devices.find((d) => canaryBucket(d, 'production', 2) >= 1000 && canaryBucket(d, 'production', 2) < 5000)!;
    // Cached before the canary starts.
    expect((await resolveOn(api, 'canary', { device: canaryDevice })).version).toBe(1);
    expect((await resolveOn(api, 'canary', { device: canaryDevice })).version).toBe(1);

    const started = await promote(api, 'canary', 'production', { version: 2, canary: { percent: 10 } });
    expect(started.statusCode).toBe(200);
    expect(await resolveOn(api, 'canary', { device: canaryDevice })).toMatchObject({ version: 2, cohort: 'canary', etag: planEtag(seeded[1].planSha.sm_86, 2) });
    expect(await resolveOn(api, 'canary', { device: middleDevice })).toMatchObject({ version: 1, cohort: 'stable' });
    expect(await resolveOn(api, 'canary', { device: stableDevice })).toMatchObject({ version: 1, cohort: 'stable' });
    // The per-device choice is made per request from one cached resolution.
    const q = a.queries();
    for (const d of devices.slice(0, 50)) {
      const r = await resolveOn(api, 'canary', { device: d });
      expect(r.version).toBe(canaryBucket(d, 'production', 2) < 1000 ? 2 : 1);
    }
    expect(a.queries()).toBe(q);

    // The share changes (manual SQL on rollouts.canary_bp).
    let n = a.invalidations();
    await sql(api.config, `UPDATE rollouts SET canary_bp = 5000 WHERE state = 'watching' AND version = 2`);
    await until('an invalidation', () => a.invalidations() > n, 1000);
    expect(await resolveOn(api, 'canary', { device: middleDevice })).toMatchObject({ version: 2, cohort: 'canary' });
    expect(await resolveOn(api, 'canary', { device: stableDevice })).toMatchObject({ version: 1, cohort: 'stable' });

    // The rollout ends by hand (state): every device gets version 2.
    n = a.invalidations();
    await sql(api.config, `UPDATE rollouts SET state = 'complete', decided_at = now() WHERE state = 'watching' AND version = 2`);
    await until('an invalidation', () => a.invalidations() > n, 1000);
    expect(await resolveOn(api, 'canary', { device: stableDevice })).toMatchObject({ version: 2, cohort: null });

    // Through the API on this instance: a new canary, then completion by promoting it again, then a rollback.
    expect((await rollback(api, 'canary', 'production', { reason: 'again', toVersion: 1 })).statusCode).toBe(200);
    expect(await resolveOn(api, 'canary', { device: stableDevice })).toMatchObject({ version: 1, cohort: null });
    expect((await promote(api, 'canary', 'production', { version: 2, canary: { percent: 10 }, force: true, reason: 'retry' })).statusCode).toBe(200);
    expect(await resolveOn(api, 'canary', { device: stableDevice })).toMatchObject({ version: 1, cohort: 'stable' });
    expect(await resolveOn(api, 'canary', { device: canaryDevice })).toMatchObject({ version: 2, cohort: 'canary' });
    const full = await promote(api, 'canary', 'production', { version: 2, reason: 'all' });
    expect(json(full).rollout).toMatchObject({ state: 'complete' });
    expect(await resolveOn(api, 'canary', { device: stableDevice })).toMatchObject({ version: 2, cohort: null });
    expect((await promote(api, 'canary', 'production', { version: 1 })).statusCode).toBe(200);
    expect((await promote(api, 'canary', 'production', { version: 2, canary: { percent: 10 } })).statusCode).toBe(200);
    expect(await resolveOn(api, 'canary', { device: canaryDevice })).toMatchObject({ version: 2, cohort: 'canary' });
    expect((await rollback(api, 'canary', 'production', { reason: 'bad canary' })).statusCode).toBe(200);
    expect(await resolveOn(api, 'canary', { device: canaryDevice })).toMatchObject({ version: 1, cohort: null });

    // Deleting the rollout row (manual SQL) of a watching canary ends the split too.
    expect((await promote(api, 'canary', 'production', { version: 2, canary: { percent: 10 } })).statusCode).toBe(200);
    expect(await resolveOn(api, 'canary', { device: stableDevice })).toMatchObject({ version: 1, cohort: 'stable' });
    n = a.invalidations();
    await sql(api.config, `DELETE FROM rollouts WHERE state = 'watching'`);
    await until('an invalidation', () => a.invalidations() > n, 1000);
    expect(await resolveOn(api, 'canary', { device: stableDevice })).toMatchObject({ version: 2, cohort: null });
  });
});
