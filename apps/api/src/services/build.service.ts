import { createHash } from 'node:crypto';
import { Injectable, Logger } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { canonicalJson, jobPriority, planSpecHash, type BuildSpec, type Target, type TargetJobData } from '../../../../libs/contracts/index.js';
import { BuildError, OPTIMIZER_VERSION, type ModelInfo } from '../../../../libs/native/index.js';
import { BuildCacheRepository, BuildRepository, IdempotencyRepository, VersionRepository, isUuid } from '../../../../libs/registry/index.js';
import { modelKey } from '../../../../libs/storage/index.js';
import { toBuildStatusDto, type BuildStatusDto, type SubmitBuildResponse } from '../dto/build.dto.js';
import { paths } from '../dto/links.js';
import { ApiError, type FieldIssue } from '../errors/api.error.js';
import { DatabaseRepository } from '../repositories/database.repository.js';
import { ModelInspectorRepository } from '../repositories/model-inspector.repository.js';
import { BuildCacheLookupRepository } from '../repositories/build-cache-lookup.repository.js';
import { QueueRepository } from '../repositories/queue.repository.js';
import { StorageRepository } from '../repositories/storage.repository.js';
import { actorScope, type RequestActor } from '../auth/request-actor.js';
import { CachedVersionBatcher } from './cached-version-batcher.js';
import { ModelUploadService } from './model-upload.service.js';
import { calibrationArchiveKey, calibrationTableKey } from '../../../worker/src/calibration/index.js';
import { checkCalibrationUpload, type CalibrationFiles } from './calibration-upload.js';
import { requestContext } from '../logging/request-context.js';

/** Parser verdicts that say the file is not a model we can build (the client's fault, never retried). */
const MODEL_IS_BAD = new Set(['E_PARSE', 'E_UNSUPPORTED_OP', 'E_PROFILE', 'E_INVALID_MODEL', 'E_EXTERNAL_DATA', 'E_SHAPE', 'E_RESOURCE']);

/** A submission refused because the model could not be stored in S3. */
export const STORAGE_FAILED_CODE = 'E_STORAGE';

/** Recorded on every target of a build whose flow could not be queued. */
export const ENQUEUE_FAILED_CODE = 'E_ENQUEUE';

export const IDEMPOTENCY_CONFLICT_CODE = 'E_IDEMPOTENCY_CONFLICT';
export const IDEMPOTENCY_IN_PROGRESS_CODE = 'E_IDEMPOTENCY_IN_PROGRESS';

/** Printable ASCII, as the IETF Idempotency-Key draft suggests (a UUID in practice). */
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

/** 400 naming the header unless the Idempotency-Key is 1-255 printable ASCII characters. */
export function checkIdempotencyKey(key: string | undefined): void {
  if (key !== undefined && !IDEMPOTENCY_KEY.test(key)) throw ApiError.invalidField('Idempotency-Key', 'expected 1-255 printable ASCII characters (e.g. a UUID)');
}

/** A model received by this API: an upload (in memory when small) or a file fetched for a CI webhook. */
export interface ModelFile {
  size: number;
  sha256: string;
  /** Where the bytes are on disk; a small upload is only written there when this is called. */
  localPath(): Promise<string>;
}

export interface SubmitModelInput {
  spec: BuildSpec;
  model: ModelFile;
  /** Provenance stored with the version (model_versions.source). */
  source: Record<string, unknown>;
  /** INT8 calibration data uploaded with the model (multipart "calibration" / "calibrationTable"). */
  calibration?: CalibrationFiles;
}

export interface SubmitContext {
  actor: RequestActor;
  /** Idempotency-Key header, when sent. */
  idempotencyKey?: string;
  /** Priority header (release | branch | 1-2097151): overrides the spec's priority. */
  priority?: string;
}

/** The Priority header: release, branch or a BullMQ priority (1 = first). */
export function parsePriorityHeader(raw: string): BuildSpec['priority'] {
  const value = raw.trim().toLowerCase();
  try {
    jobPriority(value);
  } catch (err) {
    throw ApiError.invalidField('priority', (err as Error).message);
  }
  return value === 'release' || value === 'branch' ? value : Number(value);
}

/** Same key + same request: the original answer. Model bytes, canonical spec and calibration uploads make the request. */
export function submissionHash(modelSha256: string, spec: BuildSpec, calibration: { archive?: string; table?: string } = {}): string {
  const files = calibration.archive || calibration.table ? `\ncalibration=${calibration.archive ?? '-'}\ntable=${calibration.table ?? '-'}` : '';
  return createHash('sha256').update(`${modelSha256}\n${canonicalJson(spec)}${files}`).digest('hex');
}

/**
 * Profiles name graph inputs and give min/opt/max shapes: each must name a real
 * input, match its rank, and keep the dimensions the model fixes.
 */
export function checkProfilesAgainstModel(spec: BuildSpec, info: ModelInfo): FieldIssue[] {
  const issues: FieldIssue[] = [];
  const inputs = new Map(info.inputs.map((i) => [i.name, i]));
  for (const [name, profile] of Object.entries(spec.profiles)) {
    const field = `profiles.${name}`;
    const input = inputs.get(name);
    if (!input) {
      const known = info.inputs.map((i) => `"${i.name}"`).join(', ') || 'none';
      issues.push({ field, message: `the model has no input "${name}" (inputs: ${known})` });
      continue;
    }
    const shape = input.shape;
    if (shape === null) continue; // rank unknown to the model: the optimizer checks the profile
    if (profile.min.length !== shape.length) {
      issues.push({
        field,
        message: `rank ${profile.min.length} does not match input "${name}" of rank ${shape.length} (shape [${shape.join(', ')}])`,
      });
      continue;
    }
    shape.forEach((dim, i) => {
      if (typeof dim !== 'number' || dim <= 0) return; // symbolic or unknown: the profile decides
      if (profile.min[i] !== dim || profile.opt[i] !== dim || profile.max[i] !== dim) {
        issues.push({
          field,
          message: `dimension ${i} of input "${name}" is fixed at ${dim} by the model, the profile gives ${profile.min[i]}/${profile.opt[i]}/${profile.max[i]}`,
        });
      }
    });
  }
  return issues;
}

@Injectable()
export class BuildService {
  private readonly logger = new Logger('BuildService');

  constructor(
    private readonly uploads: ModelUploadService,
    private readonly inspector: ModelInspectorRepository,
    private readonly storage: StorageRepository,
    private readonly versions: VersionRepository,
    private readonly builds: BuildRepository,
    private readonly queues: QueueRepository,
    private readonly database: DatabaseRepository,
    private readonly cache: BuildCacheLookupRepository,
    private readonly cacheRecords: BuildCacheRepository,
    private readonly cachedVersions: CachedVersionBatcher,
    private readonly idempotency: IdempotencyRepository,
  ) {}

  /**
   * POST /v1/builds: reads the upload, then submitModelFile(). With an
   * Idempotency-Key (scoped per API key) a repeated request gets the original
   * answer (`replayed`), and the same key with another request a 409.
   */
  async submit(request: FastifyRequest, base: string, ctx: SubmitContext): Promise<{ body: SubmitBuildResponse; replayed: boolean }> {
    checkIdempotencyKey(ctx.idempotencyKey);
    const headerPriority = ctx.priority === undefined ? undefined : parsePriorityHeader(ctx.priority);
    const received = await this.uploads.receive(request);
    try {
      const { model } = received;
      const spec: BuildSpec = headerPriority === undefined ? received.spec : { ...received.spec, priority: headerPriority };
      const idempotency = ctx.idempotencyKey === undefined ? null : { scope: actorScope(ctx.actor), key: ctx.idempotencyKey };
      if (idempotency) {
        const claim = await this.idempotency.claim(
          idempotency.scope,
          idempotency.key,
          submissionHash(model.sha256, spec, { archive: received.calibration?.sha256, table: received.calibrationTable?.sha256 }),
        );
        if (claim.state === 'replay') return { body: claim.response as unknown as SubmitBuildResponse, replayed: true };
        if (claim.state === 'conflict') {
          throw new ApiError(409, `Idempotency-Key "${idempotency.key}" was already used for a different request (other model bytes, spec or calibration data)`, {
            code: IDEMPOTENCY_CONFLICT_CODE,
          });
        }
        if (claim.state === 'in-progress') {
          throw new ApiError(409, `a request with Idempotency-Key "${idempotency.key}" is still being processed; retry shortly`, { code: IDEMPOTENCY_IN_PROGRESS_CODE });
        }
      }
      try {
        const body = await this.submitModelFile(
          {
            spec,
            model,
            source: { type: 'upload', submittedBy: ctx.actor.name, apiKeyId: ctx.actor.keyId, filename: model.filename },
            calibration: { archive: received.calibration, table: received.calibrationTable },
          },
          base,
        );
        if (idempotency) await this.idempotency.complete(idempotency.scope, idempotency.key, body.buildId, body as unknown as Record<string, unknown>);
        return { body, replayed: false };
      } catch (err) {
        if (idempotency) await this.idempotency.release(idempotency.scope, idempotency.key).catch(() => undefined);
        throw err;
      }
    } finally {
      await received.dispose();
    }
  }

  /**
   * Submits a model file that is already on disk (an upload, a CI webhook's
   * download). Targets whose plan is in the build cache (same model bytes,
   * plan-affecting spec and optimizer version) are satisfied at once; only the
   * others are validated against the model and queued. All cached: the version is
   * complete before this returns.
   */
  async submitModelFile(input: SubmitModelInput, base: string): Promise<SubmitBuildResponse> {
    const { spec, model } = input;
    // INT8 without calibration data is refused here; the data's hashes are part of the plan's identity.
    let calibration = await checkCalibrationUpload(spec, input.calibration ?? {}, null, this.uploads.maxCalibrationBytes);
    const specHash = planSpecHash(spec, { calibrationSha256: calibration.archive?.sha256, calibrationTableSha256: calibration.table?.sha256 });
    const cached = await this.cache.find({ modelSha256: model.sha256, specHash, optimizerVersion: OPTIMIZER_VERSION }, spec.targets);
    const missing = spec.targets.filter((t) => !cached.has(t));
    // A cache hit proves the same bytes passed these checks with the same spec already.
    let info: ModelInfo | null = null;
    if (missing.length) {
      info = await this.inspect(await model.localPath());
      const profileIssues = checkProfilesAgainstModel(spec, info);
      if (profileIssues.length) {
        throw ApiError.badRequest(`invalid build spec: ${profileIssues.map((i) => `${i.field}: ${i.message}`).join('; ')}`, profileIssues);
      }
      calibration = await checkCalibrationUpload(spec, calibration, info, this.uploads.maxCalibrationBytes);
    }

    const key = modelKey(model.sha256);
    const links = (buildId: string, version: number) => ({ self: base + paths.build(buildId), version: base + paths.version(spec.model, version) });
    if (!missing.length) {
      // Every target hit: earlier versions of these very bytes stored them (content-addressed, never deleted).
      const created = await this.cachedVersions.register(spec.model, {
        modelSha256: model.sha256,
        modelKey: key,
        modelSize: model.size,
        spec,
        specHash,
        source: input.source,
        plans: spec.targets.map((t) => cached.get(t)!),
      });
      this.logger.log(`build ${created.buildId}: ${spec.model} v${created.version} for ${created.targets.join(', ')} from the build cache (model ${model.sha256.slice(0, 12)})`);
      return {
        buildId: created.buildId,
        model: spec.model,
        version: created.version,
        targets: created.targets,
        status: 'succeeded',
        cacheHits: spec.targets,
        links: links(created.buildId, created.version),
      };
    }

    await this.storeModel(key, await model.localPath(), model.sha256);
    if (calibration.archive) await this.storeModel(calibrationArchiveKey(calibration.archive.sha256), calibration.archive.path, calibration.archive.sha256);
    if (calibration.table) await this.storeModel(calibrationTableKey(calibration.table.sha256), calibration.table.path, calibration.table.sha256);

    const created = await this.versions.createVersionWithBuild({
      modelName: spec.model,
      modelSha256: model.sha256,
      modelKey: key,
      modelSize: model.size,
      spec,
      specHash,
      targets: spec.targets,
      source: input.source,
    });
    const { build, version } = created;
    if (cached.size) await this.cacheRecords.applyHits(build.id, version.id, [...cached.values()]);
    const requestId = requestContext.getStore()?.requestId;
    const jobData = (target: TargetJobData['target']): TargetJobData => ({
      ...(requestId && { requestId }),
      buildId: build.id,
      modelName: spec.model,
      modelVersionId: version.id,
      version: version.version,
      target,
      modelKey: key,
      modelSha256: model.sha256,
      spec,
      specHash,
      ...(calibration.archive && { calibrationKey: calibrationArchiveKey(calibration.archive.sha256), calibrationSha256: calibration.archive.sha256 }),
      ...(calibration.table && { calibrationTableKey: calibrationTableKey(calibration.table.sha256), calibrationTableSha256: calibration.table.sha256 }),
    });
    try {
      await this.queues.addBuildFlow({
        finalize: { buildId: build.id, modelVersionId: version.id },
        targets: missing.map(jobData),
      });
    } catch (err) {
      await this.failUnqueuedBuild(build.id, missing, err);
      throw ApiError.serviceUnavailable(
        `build ${build.id} was recorded but could not be queued (${(err as Error).message}); it is marked failed, submit again`,
        ENQUEUE_FAILED_CODE,
      );
    }
    const hits = spec.targets.filter((t) => cached.has(t));
    this.logger.log(
      `build ${build.id}: ${spec.model} v${version.version} for ${build.targets.join(', ')} (model ${model.sha256.slice(0, 12)}, ${model.size} bytes${hits.length ? `; cache hits: ${hits.join(', ')}` : ''})`,
    );
    return {
      buildId: build.id,
      model: spec.model,
      version: version.version,
      targets: build.targets,
      status: 'queued',
      cacheHits: hits,
      // Queued anyway: the worker records the precise failure per target (E_UNSUPPORTED_OP).
      ...(info?.supported === false && { warnings: [`the optimizer does not implement every op of this model: ${info.unsupportedOps}`] }),
      links: links(build.id, version.version),
    };
  }

  async get(buildId: string, base: string): Promise<BuildStatusDto> {
    if (!isUuid(buildId)) throw ApiError.invalidField('id', `build id must be a UUID, got "${String(buildId).slice(0, 100)}"`);
    const build = await this.builds.get(buildId);
    if (!build) throw ApiError.notFound(`build ${buildId} not found`);
    const version = await this.versions.getVersionById(build.modelVersionId);
    const model = version ? await this.database.findModelById(version.modelId) : null;
    if (!version || !model) throw new Error(`build ${buildId} points at a missing version ${build.modelVersionId}`);
    return toBuildStatusDto(build, model.name, version.version, base);
  }

  private async inspect(path: string): Promise<ModelInfo> {
    try {
      return await this.inspector.inspect(path);
    } catch (err) {
      if (err instanceof BuildError && MODEL_IS_BAD.has(err.code)) {
        throw ApiError.unprocessable(`model: not a usable ONNX model: ${err.message}`, err.code, [{ field: 'model', message: err.message }]);
      }
      throw err;
    }
  }

  /** Content-addressed and immutable: the same bytes pushed again are already there. */
  private async storeModel(key: string, path: string, sha256: string): Promise<void> {
    try {
      if (!(await this.storage.exists(key))) {
        await this.storage.uploadFile(key, path, { contentType: 'application/octet-stream', sha256 });
      }
    } catch (err) {
      // Details stay in the log: they name internal hosts.
      this.logger.error(`storing ${key} failed: ${(err as Error)?.stack ?? String(err)}`);
      throw ApiError.serviceUnavailable('object storage is unavailable, nothing was recorded; retry later', STORAGE_FAILED_CODE);
    }
  }

  /** Never leave a build queued forever when its jobs do not exist. */
  private async failUnqueuedBuild(buildId: string, targets: TargetJobData['target'][], cause: unknown): Promise<void> {
    const message = `could not queue the build: ${(cause as Error)?.message ?? String(cause)}`;
    this.logger.error(`build ${buildId}: ${message}`);
    try {
      for (const target of targets) await this.builds.markTargetFailed(buildId, target, ENQUEUE_FAILED_CODE, message);
      await this.versions.finalize(buildId);
    } catch (err) {
      this.logger.error(`build ${buildId}: could not record the queueing failure: ${(err as Error).message}`);
    }
  }
}
