import { createHash } from 'node:crypto';
import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { FastifyInstance } from 'fastify';
import { DEFAULT_TELEMETRY_CONFIG, type TelemetryConfig } from '../../../../libs/config/index.js';
import { canonicalJson } from '../../../../libs/contracts/index.js';
import { TelemetryRepository, type TelemetryChannel } from '../../../../libs/registry/index.js';
import { API_CONFIG, type ApiAppConfig } from '../api-config.token.js';
import { ApiError, type FieldIssue } from '../errors/api.error.js';
import { TelemetryAggregator } from './telemetry-aggregator.js';
import { registerTelemetryBodyLimit } from './telemetry-body-limit.js';
import { fromDeviceHistogram, fromPercentiles, type SparseHistogram } from './telemetry-histogram.js';
import { parseTelemetry, type TelemetryReport } from './telemetry-report.js';

export interface TelemetryAccepted {
  accepted: number;
  /** Rows (channel, target, version, bucket) the reports added to. */
  series: number;
  /** true: summed in memory, written within flushMs; false: written before this answer. */
  buffered: boolean;
}

/** Channels found stay cached this long (they are never deleted; versions grow). */
const CHANNEL_CACHE_MS = 30_000;
/** Past this many pending rows a request waits for a flush: memory stays bounded under any load. */
const MAX_PENDING_SERIES = 20_000;

/**
 * Fleet telemetry intake: validates reports (bounded, clock-checked), maps them
 * to their channel and sums them per (channel, target, version, bucket) before
 * upserting, either buffered (TELEMETRY_FLUSH_MS) or written through.
 */
@Injectable()
export class TelemetryService implements OnModuleInit, OnModuleDestroy, OnApplicationShutdown {
  readonly config: TelemetryConfig;
  private readonly logger = new Logger('Telemetry');
  private readonly buffer = new TelemetryAggregator();
  private readonly channels = new Map<string, { value: TelemetryChannel; at: number }>();
  private timer?: NodeJS.Timeout;
  private pruneTimer?: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    @Inject(API_CONFIG) apiConfig: ApiAppConfig,
    private readonly telemetry: TelemetryRepository,
    private readonly adapterHost: HttpAdapterHost,
  ) {
    this.config = apiConfig.telemetry ?? DEFAULT_TELEMETRY_CONFIG;
  }

  onModuleInit(): void {
    registerTelemetryBodyLimit(this.adapterHost.httpAdapter.getInstance<FastifyInstance>(), this.config.maxBodyBytes);
    if (this.config.flushMs > 0) {
      this.timer = setInterval(() => void this.flush(), this.config.flushMs);
      this.timer.unref();
    }
    // Retention: every instance prunes hourly (idempotent), the first time a minute after boot.
    const prune = () => {
      this.pruneTimer = setTimeout(() => {
        void this.prune()
          .catch((err: unknown) => this.logger.warn(`telemetry pruning failed: ${(err as Error).message}`))
          .finally(() => !this.closed && prune());
      }, this.pruneTimer ? 3_600_000 : 60_000);
      this.pruneTimer.unref();
    };
    prune();
  }

  /** Deletes buckets older than the retention (TELEMETRY_RETENTION_HOURS). */
  async prune(): Promise<number> {
    const hours = this.config.retentionHours ?? DEFAULT_TELEMETRY_CONFIG.retentionHours!;
    const removed = await this.telemetry.prune(new Date(Date.now() - hours * 3_600_000));
    if (removed) this.logger.log(`pruned ${removed} telemetry buckets older than ${hours} h`);
    return removed;
  }

  /**
   * With an Idempotency-Key (scope: the API key) the reports are written through, in one
   * transaction with the key: a repeat gets the first answer (`replayed`) and adds nothing,
   * the same key with other reports a 409.
   */
  async ingest(body: unknown, once?: { scope: string; key: string }): Promise<{ body: TelemetryAccepted; replayed: boolean }> {
    const parsed = parseTelemetry(body, this.config);
    if (!parsed.ok) {
      throw ApiError.badRequest(`invalid telemetry: ${parsed.errors.slice(0, 5).map((e) => `${e.field}: ${e.message}`).join('; ')}`, parsed.errors);
    }
    const batch = Array.isArray(body);
    const local = new TelemetryAggregator();
    const unknown: FieldIssue[] = [];
    const badVersion: FieldIssue[] = [];
    for (let i = 0; i < parsed.reports.length; i++) {
      const r = parsed.reports[i];
      const field = (f: string) => (batch ? `[${i}].${f}` : f);
      const ch = await this.channel(r.model, r.channel, r.version);
      if (!ch) {
        unknown.push({ field: field('channel'), message: `model "${r.model}" has no channel "${r.channel}"` });
        continue;
      }
      if (r.version > ch.maxVersion) {
        badVersion.push({ field: field('version'), message: `model "${r.model}" has no version ${r.version} (latest ${ch.maxVersion})` });
        continue;
      }
      local.add(this.contribution(ch.channelId, r));
    }
    if (unknown.length) throw new ApiError(404, `unknown channel: ${unknown[0].message}`, { code: 'E_UNKNOWN_CHANNEL', errors: unknown });
    if (badVersion.length) throw ApiError.badRequest(`invalid telemetry: ${badVersion[0].field}: ${badVersion[0].message}`, badVersion);
    const series = local.size;
    if (once) {
      const answer: TelemetryAccepted = { accepted: parsed.reports.length, series, buffered: false };
      const hash = createHash('sha256').update(`telemetry\n${canonicalJson(body)}`).digest('hex');
      const outcome = await this.telemetry.addOnce(once.scope, once.key, hash, local.deltas(), answer as unknown as Record<string, unknown>);
      if (outcome.state === 'conflict') {
        throw new ApiError(409, `Idempotency-Key "${once.key}" was already used for different reports`, { code: 'E_IDEMPOTENCY_CONFLICT' });
      }
      return outcome.state === 'replay' ? { body: outcome.response as unknown as TelemetryAccepted, replayed: true } : { body: answer, replayed: false };
    }
    if (this.config.flushMs === 0) {
      await this.telemetry.add(local.deltas());
      return { body: { accepted: parsed.reports.length, series, buffered: false }, replayed: false };
    }
    if (this.closed) throw ApiError.serviceUnavailable('shutting down', 'E_SHUTTING_DOWN');
    this.buffer.absorb(local);
    if (this.buffer.size >= MAX_PENDING_SERIES) await this.flush();
    return { body: { accepted: parsed.reports.length, series, buffered: true }, replayed: false };
  }

  /** Writes what is buffered; one flush at a time, a failed one is put back for the next. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      if (!this.buffer.size) return;
      const batch = this.buffer.take();
      try {
        await this.telemetry.add(batch.deltas());
      } catch (err) {
        this.logger.warn(`telemetry flush of ${batch.size} rows failed, kept for the next one: ${(err as Error).message}`);
        this.buffer.absorb(batch);
      }
    });
    return this.flushing;
  }

  private contribution(channelId: string, r: TelemetryReport) {
    const width = this.config.bucketSeconds * 1000;
    let hist: SparseHistogram = new Map();
    if (r.latency) hist = fromPercentiles(r.requests, r.latency.p50Ms, r.latency.p99Ms);
    else if (r.histogram) hist = fromDeviceHistogram(r.histogram.bucketsMs, r.histogram.counts);
    return {
      channelId,
      target: r.target,
      version: r.version,
      // A window is counted in the bucket it ends in.
      bucketStart: Math.floor(r.window.end / width) * width,
      requests: r.requests,
      errors: r.errors,
      windowMs: r.window.end - r.window.start,
      hist,
    };
  }

  private async channel(model: string, channel: string, version: number): Promise<TelemetryChannel | null> {
    const key = `${model}\u0000${channel}`;
    const cached = this.channels.get(key);
    const now = Date.now();
    // A version newer than the cached latest may just have been built: look again (at most once a second).
    if (cached && now - cached.at < CHANNEL_CACHE_MS && (version <= cached.value.maxVersion || now - cached.at < 1000)) return cached.value;
    const found = await this.telemetry.channel(model, channel);
    if (found) {
      if (this.channels.size >= 10_000) this.channels.clear();
      this.channels.set(key, { value: found, at: now });
    }
    return found;
  }

  async onModuleDestroy(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    if (this.pruneTimer) clearTimeout(this.pruneTimer);
    // While Postgres is still open: what was accepted is written.
    await this.flush();
  }

  onApplicationShutdown(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
