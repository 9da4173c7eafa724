import { Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { FastifyInstance } from 'fastify';
import { Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { renderSharedMetrics } from '../../../../libs/operations/index.js';
import { BuildControlRepository } from '../../../../libs/registry/index.js';
import { OperationsRedisRepository } from '../events/operations-redis.repository.js';
import { WorkerRegistryService, type PoolDto } from '../workers/worker-registry.service.js';

/**
 * Prometheus metrics. This process's own (API latency, Node.js runtime) live in
 * a prom-client registry; farm-wide gauges (queues, workers, build cache) are
 * read at scrape time from Redis and Postgres; what the workers measure (stage
 * and target durations, failures by code) comes from their shared Redis counters.
 */
@Injectable()
export class MetricsService implements OnModuleInit {
  readonly registry = new Registry();
  private readonly logger = new Logger('Metrics');
  private readonly latency: Histogram<'method' | 'route' | 'status'>;

  constructor(
    private readonly adapterHost: HttpAdapterHost,
    private readonly ops: OperationsRedisRepository,
    private readonly workers: WorkerRegistryService,
    private readonly control: BuildControlRepository,
  ) {
    collectDefaultMetrics({ register: this.registry, prefix: 'planforge_api_' });
    let pools: { at: number; value: Promise<PoolDto[]> } | undefined;
    const scrapePools = (): Promise<PoolDto[]> => {
      if (!pools || Date.now() - pools.at > 1_000) pools = { at: Date.now(), value: this.workers.pools() };
      return pools.value;
    };
    this.latency = new Histogram({
      name: 'planforge_api_request_duration_seconds',
      help: 'API request latency by method, route pattern and status code.',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120],
      registers: [this.registry],
    });
    // The three pool gauges are collected in parallel: they share one read of the pools per scrape.
    new Gauge({
      name: 'planforge_queue_depth',
      help: 'Jobs in each target queue by state (waiting includes prioritized).',
      labelNames: ['target', 'state'],
      registers: [this.registry],
      collect: async function (this: Gauge<'target' | 'state'>) {
        const pools = await scrapePools();
        this.reset();
        for (const pool of pools) for (const state of ['waiting', 'active', 'delayed', 'failed'] as const) this.set({ target: pool.target, state }, pool.queue[state]);
      },
    });
    new Gauge({
      name: 'planforge_queue_oldest_waiting_seconds',
      help: 'Age of the oldest job waiting in each target queue (0 when none waits).',
      labelNames: ['target'],
      registers: [this.registry],
      collect: async function (this: Gauge<'target'>) {
        const pools = await scrapePools();
        this.reset();
        for (const pool of pools) this.set({ target: pool.target }, pool.queue.oldestWaitingSeconds ?? 0);
      },
    });
    new Gauge({
      name: 'planforge_workers',
      help: 'Workers serving each target (pool) by state: alive, busy (of the alive), lost.',
      labelNames: ['target', 'state'],
      registers: [this.registry],
      collect: async function (this: Gauge<'target' | 'state'>) {
        const pools = await scrapePools();
        this.reset();
        for (const pool of pools) {
          this.set({ target: pool.target, state: 'alive' }, pool.workers.alive);
          this.set({ target: pool.target, state: 'busy' }, pool.workers.busy);
          this.set({ target: pool.target, state: 'lost' }, pool.workers.lost);
        }
      },
    });
    let cache: { at: number; value: Promise<{ hits: number; total: number }> } | undefined;
    const scrapeCache = () => {
      if (!cache || Date.now() - cache.at > 1_000) cache = { at: Date.now(), value: this.control.cacheCounts() };
      return cache.value;
    };
    new Gauge({
      name: 'planforge_build_targets',
      help: 'Build targets recorded, by whether the build cache satisfied them.',
      labelNames: ['cache'],
      registers: [this.registry],
      collect: async function (this: Gauge<'cache'>) {
        const { hits, total } = await scrapeCache();
        this.set({ cache: 'hit' }, hits);
        this.set({ cache: 'miss' }, total - hits);
      },
    });
    new Gauge({
      name: 'planforge_build_cache_hit_ratio',
      help: 'Share of build targets satisfied from the build cache (0-1).',
      registers: [this.registry],
      collect: async function (this: Gauge) {
        const { hits, total } = await scrapeCache();
        this.set(total ? hits / total : 0);
      },
    });
  }

  onModuleInit(): void {
    const fastify = this.adapterHost.httpAdapter.getInstance<FastifyInstance>();
    fastify.addHook('onResponse', async (request, reply) => {
      // The route pattern, never the raw URL: ids would explode the label set.
      const route = request.routeOptions?.url ?? 'unmatched';
      this.latency.observe({ method: request.method, route, status: String(reply.statusCode) }, reply.elapsedTime / 1000);
    });
  }

  /** The whole exposition text. */
  async render(): Promise<{ contentType: string; body: string }> {
    let own: string;
    try {
      own = await this.registry.metrics();
    } catch (err) {
      // A farm-wide gauge failed (Redis or Postgres away): still answer with this process's metrics.
      this.logger.warn(`farm metrics unavailable: ${(err as Error).message}`);
      own = `${await this.registry.getSingleMetricAsString('planforge_api_request_duration_seconds')}\n`;
    }
    let shared = '';
    try {
      shared = await renderSharedMetrics(this.ops.redis, this.ops.farm);
    } catch (err) {
      this.logger.warn(`worker metrics unavailable: ${(err as Error).message}`);
    }
    return { contentType: this.registry.contentType, body: own + shared };
  }
}
