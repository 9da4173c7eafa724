import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { TARGETS, expandTargets, type Target } from '../contracts/index.js';
import { ConfigError } from './config-error.js';

export const WORKER_MODES = ['cross', 'gpu'] as const;
export type WorkerMode = (typeof WORKER_MODES)[number];

export interface S3Config {
  /** Unset = AWS itself; set for MinIO, s3rver, R2 … */
  endpoint?: string;
  region: string;
  bucket: string;
  /** Unset = the SDK's default credential chain. */
  accessKeyId?: string;
  secretAccessKey?: string;
  forcePathStyle: boolean;
}

export interface ApiConfig {
  host: string;
  port: number;
  maxUploadBytes: number;
  /** Base URL clients reach the API at (used in Location headers, links); unset = derived from the request. */
  publicUrl?: string;
}

export interface WorkerConfig {
  /** Targets this process builds for, canonical and de-duplicated. */
  targets: Target[];
  mode: WorkerMode;
  /** Jobs run at once per target queue. */
  concurrency: number;
  /** Recorded in build_targets.worker_id. */
  id: string;
  /** Disk budget of the local model cache (WORK_DIR/models); least recently used models go first. */
  modelCacheBytes: number;
  /**
   * WORKER_LOCK_DURATION_MS: BullMQ job lock; a worker that dies holding a job loses it after this long
   * and the job is redelivered (BullMQ default 30 s). Optional so hand-built configs keep compiling.
   */
  lockDurationMs?: number;
  /** WORKER_STALLED_INTERVAL_MS: how often workers look for jobs whose lock expired (BullMQ default 30 s). */
  stalledIntervalMs?: number;
}

/** API keys (apps/api auth). */
export interface AuthConfig {
  /** AUTH_DISABLED=true: every request acts as an admin. Local development only. */
  disabled: boolean;
  /** ADMIN_API_KEY: ensured as an admin key at boot (stored hashed), so a fresh farm has a first admin. */
  adminApiKey?: string;
}

/** CI webhooks (apps/api). */
export interface WebhookConfig {
  /** WEBHOOK_ALLOW_INSECURE_HTTP=true lets trigger URL templates use http:// (tests); https:// otherwise. */
  allowInsecureHttp: boolean;
}

/** Promotion gate thresholds: a candidate worse than the channel's current version by more is refused. */
export interface PromotionGateConfig {
  /** GATE_MAX_TOP1_DROP: top-1 agreement may drop by at most this many percentage points. */
  maxTop1DropPoints: number;
  /** GATE_MAX_ERROR_RATIO: max abs error may grow by at most this factor. */
  maxErrorRatio: number;
  /** GATE_MAX_LATENCY_REGRESSION_PCT: profiled p99 latency may grow by at most this many percent. */
  maxLatencyRegressionPct: number;
}

/** INT8 calibration data uploaded with a build (apps/api). */
export interface CalibrationUploadConfig {
  /** MAX_CALIBRATION_BYTES: largest calibration archive (.npz) accepted with a build. */
  maxUploadBytes: number;
}

/** Per-API-key submission rate limit (token bucket in Redis; apps/api). */
export interface RateLimitConfig {
  /** SUBMIT_RATE_LIMIT_PER_MINUTE: builds a key may submit per minute on average; 0 turns the limit off. */
  submitPerMinute: number;
  /** SUBMIT_RATE_LIMIT_BURST: builds a key may submit at once before the average applies. */
  submitBurst: number;
}

/** Fleet telemetry intake (POST /v1/telemetry; apps/api). */
export interface TelemetryConfig {
  /** TELEMETRY_BUCKET_SECONDS: width of the aggregation buckets (one row per channel, target, version and bucket). */
  bucketSeconds: number;
  /** TELEMETRY_FLUSH_MS: reports are summed in memory and upserted this often; 0 writes each request through before answering. */
  flushMs: number;
  /** TELEMETRY_MAX_BATCH: reports in one request at most. */
  maxBatch: number;
  /** TELEMETRY_MAX_BODY_BYTES: largest request body (413 beyond). */
  maxBodyBytes: number;
  /** TELEMETRY_MAX_CLOCK_SKEW_SECONDS: how far in the future a window may end (device clocks drift). */
  maxClockSkewSeconds: number;
  /** TELEMETRY_MAX_AGE_SECONDS: how old a window may start. */
  maxAgeSeconds: number;
  /** TELEMETRY_RETENTION_HOURS: buckets older than this are deleted (hourly); optional for hand-built configs (7 days). */
  retentionHours?: number;
}

/** Rollout watch: automatic rollback of regressing promotions (apps/api). */
export interface RolloutConfig {
  /** ROLLOUT_WATCHER_ENABLED: run the watcher loop in this API process. */
  watcherEnabled: boolean;
  /** ROLLOUT_WATCH_INTERVAL_MS: how often the watcher evaluates the channels in their watch window. */
  watchIntervalMs: number;
  /** ROLLOUT_WEBHOOK_ATTEMPTS: deliveries of one notification at most (retries with exponential backoff). */
  webhookAttempts: number;
  /** ROLLOUT_WEBHOOK_RETRY_MS: first retry delay; doubles per attempt. */
  webhookRetryMs: number;
}

export const DEFAULT_TELEMETRY_CONFIG: TelemetryConfig = {
  bucketSeconds: 60,
  flushMs: 1000,
  maxBatch: 500,
  maxBodyBytes: 1024 * 1024,
  maxClockSkewSeconds: 60,
  maxAgeSeconds: 86_400,
  retentionHours: 168,
};

export const DEFAULT_ROLLOUT_CONFIG: RolloutConfig = { watcherEnabled: true, watchIntervalMs: 5000, webhookAttempts: 5, webhookRetryMs: 1000 };

export interface AppConfig {
  auth: AuthConfig;
  /** Optional so hand-built configs keep compiling (DEFAULT_TELEMETRY_CONFIG then); loadConfig always sets it. */
  telemetry?: TelemetryConfig;
  /** Optional likewise (DEFAULT_ROLLOUT_CONFIG). */
  rollout?: RolloutConfig;
  /** Optional so hand-built configs keep compiling; loadConfig always sets it. */
  rateLimit?: RateLimitConfig;
  calibration: CalibrationUploadConfig;
  webhooks: WebhookConfig;
  promotionGate: PromotionGateConfig;
  redisUrl: string;
  /** Queue names are `${queuePrefix}-${target}` (libs/contracts/queues.ts). */
  queuePrefix: string;
  /** BullMQ `prefix` option: Redis key namespace of every queue. */
  bullPrefix: string;
  databaseUrl: string;
  s3: S3Config;
  api: ApiConfig;
  /** Scratch space for downloaded models and built plans. */
  workDir: string;
  worker: WorkerConfig;
}

const GIB = 1024 ** 3;
const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1e3, kb: 1e3, kib: 1024, m: 1e6, mb: 1e6, mib: 1024 ** 2, g: 1e9, gb: 1e9, gib: GIB, t: 1e12, tb: 1e12, tib: 1024 ** 4 };

/** "8589934592", "8GiB", "512 MiB" → bytes. */
const byteSize = z.string().transform((raw, ctx) => {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(raw);
  const unit = m ? SIZE_UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    ctx.addIssue({ code: 'custom', message: `expected a byte size like 1073741824 or 8GiB, got "${raw}"` });
    return z.NEVER;
  }
  const bytes = Math.floor(Number(m[1]) * unit);
  if (bytes < 1 || !Number.isSafeInteger(bytes)) {
    ctx.addIssue({ code: 'custom', message: `byte size out of range: "${raw}"` });
    return z.NEVER;
  }
  return bytes;
});

const boolean = z.string().transform((raw, ctx) => {
  const v = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  ctx.addIssue({ code: 'custom', message: `expected true or false, got "${raw}"` });
  return z.NEVER;
});

const integer = (min: number, max: number) =>
  z
    .string()
    .regex(/^\s*\d+\s*$/, 'expected an integer')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

const urlWithScheme = (schemes: string[]) =>
  z.string().refine(
    (v) => {
      try {
        return schemes.includes(new URL(v).protocol.replace(/:$/, ''));
      } catch {
        return false;
      }
    },
    { message: `expected a ${schemes.map((s) => `${s}://`).join(' or ')} URL` },
  );

/** BullMQ forbids ':' in queue names; keep prefixes to a key-safe alphabet. */
const prefix = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'expected 1-64 characters of [A-Za-z0-9_.-]');

const targetList = z.string().transform((raw, ctx) => {
  const names = raw.split(',').map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) {
    ctx.addIssue({ code: 'custom', message: 'expected at least one target' });
    return z.NEVER;
  }
  try {
    return expandTargets(names);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

/** Keys are the environment variable names, so an issue's path names the variable. */
const envSchema = z.object({
  REDIS_URL: urlWithScheme(['redis', 'rediss']).default('redis://127.0.0.1:6379'),
  QUEUE_PREFIX: prefix.default('build'),
  BULLMQ_PREFIX: prefix.default('planforge'),
  DATABASE_URL: urlWithScheme(['postgres', 'postgresql']).default('postgres://planforge:planforge@127.0.0.1:5432/planforge'),
  S3_ENDPOINT: urlWithScheme(['http', 'https']).optional(),
  S3_REGION: z.string().min(1).default('us-east-1'),
  S3_BUCKET: z
    .string()
    .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'expected an S3 bucket name (3-63 characters of [a-z0-9.-])')
    .default('planforge'),
  S3_ACCESS_KEY_ID: z.string().optional(),
  S3_SECRET_ACCESS_KEY: z.string().optional(),
  S3_FORCE_PATH_STYLE: boolean.default(true),
  API_HOST: z.string().min(1).default('0.0.0.0'),
  API_PORT: integer(0, 65535).default(8080),
  MAX_UPLOAD_BYTES: byteSize.default(8 * GIB),
  MAX_CALIBRATION_BYTES: byteSize.default(2 * GIB),
  PUBLIC_URL: urlWithScheme(['http', 'https']).optional(),
  WORK_DIR: z.string().min(1).default(path.join(os.tmpdir(), 'planforge')),
  // A cross-compiling worker can build for every SM; a GPU worker will default to its own (later issue).
  WORKER_TARGETS: targetList.default([...TARGETS]),
  WORKER_MODE: z.enum(WORKER_MODES).default('cross'),
  WORKER_CONCURRENCY: integer(1, 64).default(1),
  WORKER_ID: z.string().min(1).max(128).default(`${os.hostname()}-${process.pid}`),
  WORKER_MODEL_CACHE_BYTES: byteSize.default(20 * GIB),
  // Unset = BullMQ defaults (30 s each).
  WORKER_LOCK_DURATION_MS: integer(1_000, 3_600_000).optional(),
  WORKER_STALLED_INTERVAL_MS: integer(1_000, 3_600_000).optional(),
  AUTH_DISABLED: boolean.default(false),
  // Long enough that guessing is hopeless; keys the API mints are pf_ + 43 base64url characters.
  ADMIN_API_KEY: z.string().min(24, 'expected at least 24 characters').max(256).optional(),
  WEBHOOK_ALLOW_INSECURE_HTTP: boolean.default(false),
  GATE_MAX_TOP1_DROP: z.string().transform(Number).pipe(z.number().min(0).max(100)).default(1),
  GATE_MAX_ERROR_RATIO: z.string().transform(Number).pipe(z.number().min(1).max(1e6)).default(2),
  GATE_MAX_LATENCY_REGRESSION_PCT: z.string().transform(Number).pipe(z.number().min(0).max(10_000)).default(10),
  SUBMIT_RATE_LIMIT_PER_MINUTE: z.string().transform(Number).pipe(z.number().min(0).max(1_000_000)).default(120),
  SUBMIT_RATE_LIMIT_BURST: integer(1, 100_000).default(60),
  TELEMETRY_BUCKET_SECONDS: integer(1, 3600).default(DEFAULT_TELEMETRY_CONFIG.bucketSeconds),
  TELEMETRY_FLUSH_MS: integer(0, 60_000).default(DEFAULT_TELEMETRY_CONFIG.flushMs),
  TELEMETRY_MAX_BATCH: integer(1, 5000).default(DEFAULT_TELEMETRY_CONFIG.maxBatch),
  // Fastify's body limit is 1 MiB: a larger value could never be reached.
  TELEMETRY_MAX_BODY_BYTES: byteSize.pipe(z.number().max(1024 * 1024, 'at most 1 MiB')).default(DEFAULT_TELEMETRY_CONFIG.maxBodyBytes),
  TELEMETRY_MAX_CLOCK_SKEW_SECONDS: integer(0, 3600).default(DEFAULT_TELEMETRY_CONFIG.maxClockSkewSeconds),
  TELEMETRY_MAX_AGE_SECONDS: integer(60, 30 * 86_400).default(DEFAULT_TELEMETRY_CONFIG.maxAgeSeconds),
  TELEMETRY_RETENTION_HOURS: integer(1, 24 * 3650).default(DEFAULT_TELEMETRY_CONFIG.retentionHours!),
  ROLLOUT_WATCHER_ENABLED: boolean.default(DEFAULT_ROLLOUT_CONFIG.watcherEnabled),
  ROLLOUT_WATCH_INTERVAL_MS: integer(50, 3_600_000).default(DEFAULT_ROLLOUT_CONFIG.watchIntervalMs),
  ROLLOUT_WEBHOOK_ATTEMPTS: integer(1, 20).default(DEFAULT_ROLLOUT_CONFIG.webhookAttempts),
  ROLLOUT_WEBHOOK_RETRY_MS: integer(10, 600_000).default(DEFAULT_ROLLOUT_CONFIG.webhookRetryMs),
});

/** Every environment variable the configuration reads (deployment files are checked against it). */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(envSchema.shape);

export type Env = Record<string, string | undefined>;

/** Reads and validates the whole configuration; throws ConfigError naming each bad variable. */
export function loadConfig(env: Env = process.env): AppConfig {
  const raw: Record<string, string> = {};
  for (const key of Object.keys(envSchema.shape)) {
    const value = env[key];
    // An exported-but-empty variable means "unset" (common in compose files and CI).
    if (value !== undefined && value.trim() !== '') raw[key] = value.trim();
  }
  const parsed = envSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => ({ variable: String(i.path[0] ?? 'environment'), message: i.message })));
  }
  const e = parsed.data;
  if ((e.S3_ACCESS_KEY_ID === undefined) !== (e.S3_SECRET_ACCESS_KEY === undefined)) {
    const missing = e.S3_ACCESS_KEY_ID === undefined ? 'S3_ACCESS_KEY_ID' : 'S3_SECRET_ACCESS_KEY';
    throw new ConfigError([{ variable: missing, message: 'S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY must be set together' }]);
  }
  return {
    auth: { disabled: e.AUTH_DISABLED, adminApiKey: e.ADMIN_API_KEY },
    rateLimit: { submitPerMinute: e.SUBMIT_RATE_LIMIT_PER_MINUTE, submitBurst: e.SUBMIT_RATE_LIMIT_BURST },
    calibration: { maxUploadBytes: e.MAX_CALIBRATION_BYTES },
    telemetry: {
      bucketSeconds: e.TELEMETRY_BUCKET_SECONDS,
      flushMs: e.TELEMETRY_FLUSH_MS,
      maxBatch: e.TELEMETRY_MAX_BATCH,
      maxBodyBytes: e.TELEMETRY_MAX_BODY_BYTES,
      maxClockSkewSeconds: e.TELEMETRY_MAX_CLOCK_SKEW_SECONDS,
      maxAgeSeconds: e.TELEMETRY_MAX_AGE_SECONDS,
      retentionHours: e.TELEMETRY_RETENTION_HOURS,
    },
    rollout: {
      watcherEnabled: e.ROLLOUT_WATCHER_ENABLED,
      watchIntervalMs: e.ROLLOUT_WATCH_INTERVAL_MS,
      webhookAttempts: e.ROLLOUT_WEBHOOK_ATTEMPTS,
      webhookRetryMs: e.ROLLOUT_WEBHOOK_RETRY_MS,
    },
    webhooks: { allowInsecureHttp: e.WEBHOOK_ALLOW_INSECURE_HTTP },
    promotionGate: {
      maxTop1DropPoints: e.GATE_MAX_TOP1_DROP,
      maxErrorRatio: e.GATE_MAX_ERROR_RATIO,
      maxLatencyRegressionPct: e.GATE_MAX_LATENCY_REGRESSION_PCT,
    },
    redisUrl: e.REDIS_URL,
    queuePrefix: e.QUEUE_PREFIX,
    bullPrefix: e.BULLMQ_PREFIX,
    databaseUrl: e.DATABASE_URL,
    s3: {
      endpoint: e.S3_ENDPOINT,
      region: e.S3_REGION,
      bucket: e.S3_BUCKET,
      accessKeyId: e.S3_ACCESS_KEY_ID,
      secretAccessKey: e.S3_SECRET_ACCESS_KEY,
      forcePathStyle: e.S3_FORCE_PATH_STYLE,
    },
    api: { host: e.API_HOST, port: e.API_PORT, maxUploadBytes: e.MAX_UPLOAD_BYTES, publicUrl: e.PUBLIC_URL?.replace(/\/+$/, '') },
    workDir: path.resolve(e.WORK_DIR),
    worker: {
      targets: e.WORKER_TARGETS,
      mode: e.WORKER_MODE,
      concurrency: e.WORKER_CONCURRENCY,
      id: e.WORKER_ID,
      modelCacheBytes: e.WORKER_MODEL_CACHE_BYTES,
      lockDurationMs: e.WORKER_LOCK_DURATION_MS,
      stalledIntervalMs: e.WORKER_STALLED_INTERVAL_MS,
    },
  };
}

/** What the API process needs: everything but the worker section. */
export type ApiAppConfig = Omit<AppConfig, 'worker'>;

export function loadApiConfig(env: Env = process.env): ApiAppConfig {
  const { worker: _worker, ...rest } = loadConfig(env);
  return rest;
}

/** What a worker process needs: everything but the API section. */
export type WorkerAppConfig = Omit<AppConfig, 'api'>;

export function loadWorkerConfig(env: Env = process.env): WorkerAppConfig {
  const { api: _api, ...rest } = loadConfig(env);
  return rest;
}
