import { createHash, randomUUID } from 'node:crypto';
import { mkdir, open, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import type { MultipartFile, MultipartValue, Multipart } from '@fastify/multipart';
import type { FastifyRequest } from 'fastify';
import { BuildSpecError, parseBuildSpec, type BuildSpec } from '../../../../libs/contracts/index.js';
import { MAX_CALIBRATION_TABLE_BYTES } from '../../../worker/src/calibration/index.js';
import { API_CONFIG, type ApiAppConfig } from '../api-config.token.js';
import { ApiError } from '../errors/api.error.js';

/** parseBuildSpec refuses specs over 64 KiB; one byte more lets busboy tell us it cut one. */
const SPEC_MAX_BYTES = 64 * 1024;
/** Room for the spec field, part headers and boundaries on top of the model itself. */
const ENVELOPE_BYTES = 1024 * 1024;
/**
 * Models up to this size stay in memory until something needs them on disk: a
 * build-cache hit never does, and it then costs no temp file (open, write, close,
 * unlink). Larger ones stream to disk from the first byte past it.
 */
const MODEL_IN_MEMORY_BYTES = 1024 * 1024;

export const SPEC_FIELD = 'spec';
export const MODEL_FIELD = 'model';
/** Optional INT8 calibration samples: a .npz archive (apps/worker/src/calibration/calibration-layout.ts). */
export const CALIBRATION_FIELD = 'calibration';
/** Optional calibration table (JSON written by planforge-opt --calib-cache), used instead of calibrating. */
export const CALIBRATION_TABLE_FIELD = 'calibrationTable';
type FileField = typeof MODEL_FIELD | typeof CALIBRATION_FIELD | typeof CALIBRATION_TABLE_FIELD;

export interface SpooledFile {
  size: number;
  sha256: string;
  /** As the client named it; informational only. */
  filename: string;
  /** The temp file under WORK_DIR/uploads, written on the first call for a model still in memory. */
  localPath(): Promise<string>;
  /** Removes the temp file, if one was written. */
  dispose(): Promise<void>;
}

/** Calibration parts always go to disk: `path` is the file (they are read by path). */
export interface SpooledCalibrationFile extends SpooledFile {
  path: string;
}

export interface ReceivedBuildRequest {
  spec: BuildSpec;
  model: SpooledFile;
  /** Present when the client sent the optional file parts; removed by dispose() too. */
  calibration?: SpooledCalibrationFile;
  calibrationTable?: SpooledCalibrationFile;
  dispose(): Promise<void>;
}

function hasSyscall(err: unknown): boolean {
  return typeof (err as { syscall?: unknown } | null)?.syscall === 'string';
}

/**
 * Reads a build submission (multipart: a "spec" JSON field and a "model" file, in
 * either order) without holding the model in memory: the file part is streamed
 * into a temp file while it is hashed, and refused as soon as it passes
 * MAX_UPLOAD_BYTES. A spec that arrives first is validated before the model is read.
 */
@Injectable()
export class ModelUploadService implements OnModuleInit {
  readonly uploadDir: string;

  constructor(@Inject(API_CONFIG) private readonly config: ApiAppConfig) {
    this.uploadDir = join(config.workDir, 'uploads');
  }

  async onModuleInit(): Promise<void> {
    await mkdir(this.uploadDir, { recursive: true });
  }

  get maxUploadBytes(): number {
    return this.config.api.maxUploadBytes;
  }

  async receive(request: FastifyRequest): Promise<ReceivedBuildRequest> {
    if (!request.isMultipart()) {
      const type = request.headers['content-type'];
      throw ApiError.unsupportedMediaType(
        `expected a multipart/form-data body with a "${SPEC_FIELD}" field and a "${MODEL_FIELD}" file, got ${type ? `"${type}"` : 'no content type'}`,
      );
    }
    const declared = Number(request.headers['content-length']);
    if (Number.isFinite(declared) && declared > this.maxUploadBytes + this.maxCalibrationBytes + MAX_CALIBRATION_TABLE_BYTES + ENVELOPE_BYTES) {
      throw this.tooLarge();
    }

    let spec: BuildSpec | undefined;
    let model: SpooledFile | undefined;
    const extra: Partial<Record<FileField, SpooledCalibrationFile>> = {};
    const parts = request
      .parts({
        // Per-field limits are enforced while spooling; busboy only stops what no field allows.
        limits: { fileSize: Math.max(this.maxUploadBytes, this.maxCalibrationBytes), fieldSize: SPEC_MAX_BYTES + 1, files: 4, fields: 4, parts: 8 },
      })
      [Symbol.asyncIterator]();
    try {
      for (;;) {
        let next: IteratorResult<Multipart>;
        try {
          next = await parts.next();
        } catch (err) {
          throw this.translateMultipartError(err);
        }
        if (next.done) break;
        const part = next.value;
        if (part.type === 'file') {
          if (part.fieldname === CALIBRATION_FIELD || part.fieldname === CALIBRATION_TABLE_FIELD) {
            if (extra[part.fieldname]) throw ApiError.invalidField(part.fieldname, 'sent more than once');
            extra[part.fieldname] = await this.spool(part, part.fieldname, 0);
            continue;
          }
          if (part.fieldname !== MODEL_FIELD) {
            throw ApiError.invalidField(
              part.fieldname,
              `unexpected file; send the model in the "${MODEL_FIELD}" field (and calibration data in "${CALIBRATION_FIELD}" or "${CALIBRATION_TABLE_FIELD}")`,
            );
          }
          if (model) throw ApiError.invalidField(MODEL_FIELD, 'more than one model file');
          model = await this.spool(part, MODEL_FIELD, MODEL_IN_MEMORY_BYTES);
        } else {
          spec = this.readSpec(part, spec);
        }
      }
      if (!spec) throw ApiError.invalidField(SPEC_FIELD, 'missing: send the build spec as JSON text in the "spec" field');
      if (!model) throw ApiError.invalidField(MODEL_FIELD, 'missing: send the ONNX model as a file in the "model" field');
      if (model.size === 0) throw ApiError.invalidField(MODEL_FIELD, 'the file is empty');
      for (const [field, file] of Object.entries(extra)) if (file.size === 0) throw ApiError.invalidField(field, 'the file is empty');
    } catch (err) {
      await parts.return?.(undefined).catch(() => undefined);
      for (const file of [model, ...Object.values(extra)]) if (file) await file.dispose();
      throw err;
    }
    const files = [model, ...Object.values(extra)];
    return {
      spec,
      model,
      calibration: extra.calibration,
      calibrationTable: extra.calibrationTable,
      dispose: async () => {
        for (const f of files) await f.dispose();
      },
    };
  }

  get maxCalibrationBytes(): number {
    return this.config.calibration.maxUploadBytes;
  }

  private limitOf(field: FileField): { bytes: number; variable: string } {
    if (field === CALIBRATION_FIELD) return { bytes: this.maxCalibrationBytes, variable: 'MAX_CALIBRATION_BYTES' };
    if (field === CALIBRATION_TABLE_FIELD) return { bytes: MAX_CALIBRATION_TABLE_BYTES, variable: 'the calibration table limit' };
    return { bytes: this.maxUploadBytes, variable: 'MAX_UPLOAD_BYTES' };
  }

  private readSpec(part: MultipartValue, previous: BuildSpec | undefined): BuildSpec {
    if (part.fieldname !== SPEC_FIELD) {
      if (part.fieldname === MODEL_FIELD || part.fieldname === CALIBRATION_FIELD || part.fieldname === CALIBRATION_TABLE_FIELD)
        throw ApiError.invalidField(part.fieldname, 'must be a file part (with a filename), not a text field');
      throw ApiError.invalidField(part.fieldname, `unexpected field; expected "${SPEC_FIELD}" and "${MODEL_FIELD}"`);
    }
    if (previous) throw ApiError.invalidField(SPEC_FIELD, 'sent more than once');
    if (part.valueTruncated) throw ApiError.invalidField(SPEC_FIELD, `larger than ${SPEC_MAX_BYTES / 1024} KiB`);
    // @fastify/multipart hands over an already parsed object when the part says application/json.
    return parseBuildSpec(part.value);
  }

  /**
   * A file part, hashed and checked against its field's limit while it is read. Up to
   * `keepInMemoryBytes` it stays in memory (written to its temp file only if someone asks for
   * localPath()); past that it goes to the temp file, one chunk written before the next is read
   * (backpressure). Calibration parts pass 0: on disk from the start, as they are read by path.
   */
  private async spool(part: MultipartFile, field: FileField, keepInMemoryBytes: number): Promise<SpooledCalibrationFile> {
    const ext = field === MODEL_FIELD ? 'onnx' : field === CALIBRATION_FIELD ? 'npz' : 'json';
    const path = join(this.uploadDir, `${randomUUID()}.${ext}`);
    const hash = createHash('sha256');
    // The field's own limit (the model's and the calibration archive's differ).
    const limit = this.limitOf(field).bytes;
    let size = 0;
    let chunks: Buffer[] | null = [];
    let file: FileHandle | null = null;
    // busboy would skip (and so read) the rest of an oversized file: stop right at the limit.
    part.file.once('limit', () => part.file.destroy(this.tooLarge(field)));
    try {
      if (keepInMemoryBytes === 0) {
        file = await open(path, 'wx');
        chunks = null;
      }
      for await (const chunk of part.file as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > limit) throw this.tooLarge(field);
        hash.update(chunk);
        if (chunks) {
          chunks.push(chunk);
          if (size <= keepInMemoryBytes) continue;
          file = await open(path, 'wx');
          for (const c of chunks) await file.writeFile(c);
          chunks = null;
        } else {
          // writeFile on a handle writes all of it from the current position (write() may stop short).
          await file!.writeFile(chunk);
        }
      }
      if (part.file.truncated) throw this.tooLarge(field);
      await file?.close();
      file = null;
    } catch (err) {
      await file?.close().catch(() => undefined);
      throw await this.spoolFailed(err, field, path);
    }
    const sha256 = hash.digest('hex');
    if (!chunks) return { path, size, sha256, filename: part.filename, localPath: async () => path, dispose: () => rm(path, { force: true }) };
    const bytes = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
    let written: Promise<string> | null = null;
    return {
      path,
      size,
      sha256,
      filename: part.filename,
      localPath: () => (written ??= writeFile(path, bytes, { flag: 'wx' }).then(() => path)),
      dispose: async () => {
        if (written) await rm(path, { force: true });
      },
    };
  }

  /** Removes what was spooled and says why in terms of the client's request. */
  private async spoolFailed(err: unknown, field: FileField, path: string): Promise<unknown> {
    await rm(path, { force: true });
    if ((err as { code?: string }).code === 'ENOSPC') {
      return new ApiError(507, 'the API has no disk space left for uploads; retry later', { code: 'E_NO_SPACE' });
    }
    if (err instanceof ApiError || hasSyscall(err)) return err;
    const code = (err as { code?: string }).code;
    if (code === 'FST_REQ_FILE_TOO_LARGE') return this.tooLarge(field);
    return ApiError.invalidField(field, `upload interrupted: ${(err as Error).message}`);
  }

  private tooLarge(field: FileField = MODEL_FIELD): ApiError {
    const { bytes, variable } = this.limitOf(field);
    const message = `${field}: upload exceeds the limit of ${bytes} bytes (${variable})`;
    return field === MODEL_FIELD ? ApiError.payloadTooLarge(message) : new ApiError(413, message, { errors: [{ field, message }] });
  }

  /** Errors raised by the multipart parser itself are the client's: malformed or over-limit bodies. */
  private translateMultipartError(err: unknown): unknown {
    if (err instanceof ApiError || err instanceof BuildSpecError || hasSyscall(err)) return err;
    const code = (err as { code?: string } | null)?.code;
    switch (code) {
      case 'FST_REQ_FILE_TOO_LARGE':
        return this.tooLarge();
      case 'FST_INVALID_MULTIPART_CONTENT_TYPE':
        return ApiError.unsupportedMediaType(`expected a multipart/form-data body with a "${SPEC_FIELD}" field and a "${MODEL_FIELD}" file`);
      case 'FST_INVALID_JSON_FIELD_ERROR':
        return ApiError.invalidField(SPEC_FIELD, 'not valid JSON');
      case 'FST_PARTS_LIMIT':
      case 'FST_FILES_LIMIT':
      case 'FST_FIELDS_LIMIT':
        return ApiError.badRequest(`too many parts: expected one "${SPEC_FIELD}" field and one "${MODEL_FIELD}" file`);
    }
    return ApiError.badRequest(`malformed multipart body: ${(err as Error)?.message ?? String(err)}`);
  }
}
