/**
 * Shared by the registry lifecycle tests: an API with auth on, keys per role, and
 * versions completed directly through the registry repositories (no worker: these
 * tests are about what happens after a build).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Target } from '../../libs/contracts/index.js';
import { OPTIMIZER_VERSION } from '../../libs/native/index.js';
import { BuildRepository, PlanRepository, VersionRepository, createDataSource } from '../../libs/registry/index.js';
import { ObjectStorage, planKey } from '../../libs/storage/index.js';
import { json, request, type ApiUnderTest, type HttpResult, type RequestOptions } from '../api/api-test-kit.js';

export type Registry = Awaited<ReturnType<typeof openRegistry>>;

export async function openRegistry(api: ApiUnderTest) {
  const ds = await createDataSource(api.config.databaseUrl, { migrationsRun: false, poolSize: 4 }).initialize();
  const storage = new ObjectStorage(api.config.s3);
  return {
    ds,
    storage,
    versions: new VersionRepository(ds),
    builds: new BuildRepository(ds),
    plans: new PlanRepository(ds),
    async close() {
      await ds.destroy();
      await storage.close();
    },
  };
}

export interface SeedPlan {
  verification?: Record<string, unknown> | null;
  profile?: Record<string, unknown> | null;
  optimizerVersion?: string;
  /** Leave this target unbuilt (failed): the version ends partial. */
  fail?: boolean;
}

/**
 * A version built the way a worker would leave it: plan bytes in S3, a plan row
 * per target, targets succeeded, build finalized. Model bytes are random, so no
 * two seeded versions share a build cache entry.
 */
export async function seedVersion(reg: Registry, model: string, plans: Partial<Record<Target, SeedPlan>>): Promise<{ version: number; versionId: string; buildId: string; planSha: Record<string, string> }> {
  const targets = Object.keys(plans) as Target[];
  const modelSha256 = createHash('sha256').update(randomBytes(16)).digest('hex');
  const spec = { model, targets, precision: 'fp16' as const, profiles: {}, layerPrecisions: {}, labels: {} };
  const created = await reg.versions.createVersionWithBuild({
    modelName: model,
    modelSha256,
    modelKey: `models/${modelSha256}.onnx`,
    modelSize: 1234,
    spec,
    specHash: createHash('sha256').update(modelSha256).digest('hex'),
    targets,
  });
  const planSha: Record<string, string> = {};
  const dir = mkdtempSync(join(tmpdir(), 'seed-plan-'));
  try {
    for (const target of targets) {
      const p = plans[target]!;
      if (p.fail) {
        await reg.builds.markTargetFailed(created.build.id, target, 'E_UNSUPPORTED_OP', 'seeded failure');
        continue;
      }
      const bytes = Buffer.from(`PFPLAN ${model} v${created.version.version} ${target} ${randomBytes(8).toString('hex')}`);
      const sha = createHash('sha256').update(bytes).digest('hex');
      writeFileSync(join(dir, sha), bytes);
      await reg.storage.uploadFile(planKey(sha), join(dir, sha), { sha256: sha });
      await reg.plans.recordPlan({
        modelVersionId: created.version.id,
        target,
        s3Key: planKey(sha),
        sha256: sha,
        size: bytes.length,
        precision: 'fp16',
        tuned: false,
        optimizerVersion: p.optimizerVersion ?? OPTIMIZER_VERSION,
        header: { formatVersion: 1, sm: Number(target.slice(3)), precision: 'fp16' },
        verification: p.verification ?? null,
        buildMs: 10,
      });
      if (p.profile) await reg.ds.query(`UPDATE plans SET profile = $3 WHERE model_version_id = $1 AND target = $2`, [created.version.id, target, JSON.stringify(p.profile)]);
      await reg.builds.markTargetSucceeded(created.build.id, target);
      planSha[target] = sha;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  await reg.versions.finalize(created.build.id);
  return { version: created.version.version, versionId: created.version.id, buildId: created.build.id, planSha };
}

/** A key of each role, minted through the admin API. */
export async function mintKeys(api: ApiUnderTest): Promise<{ viewer: string; submitter: string; admin: string; ids: Record<string, string> }> {
  const out: Record<string, string> = {};
  const ids: Record<string, string> = {};
  for (const role of ['viewer', 'submitter', 'admin']) {
    const res = await request(api, { method: 'POST', url: '/v1/admin/keys', payload: { name: `test-${role}`, role } });
    if (res.statusCode !== 201) throw new Error(`creating a ${role} key answered ${res.statusCode}: ${res.body}`);
    out[role] = json(res).key;
    ids[role] = json(res).id;
  }
  return { viewer: out.viewer, submitter: out.submitter, admin: out.admin, ids };
}

/** A request as a given key (or none). */
export function as(api: ApiUnderTest, key: string | null, opts: RequestOptions): Promise<HttpResult> {
  if (key === null) return request(api, { ...opts, anonymous: true });
  return request(api, { ...opts, headers: { ...opts.headers, authorization: `Bearer ${key}` } });
}

export function promote(api: ApiUnderTest, model: string, channel: string, body: Record<string, unknown>): Promise<HttpResult> {
  return request(api, { method: 'POST', url: `/v1/models/${model}/channels/${channel}/promote`, payload: body });
}

export function rollback(api: ApiUnderTest, model: string, channel: string, body: Record<string, unknown>): Promise<HttpResult> {
  return request(api, { method: 'POST', url: `/v1/models/${model}/channels/${channel}/rollback`, payload: body });
}
