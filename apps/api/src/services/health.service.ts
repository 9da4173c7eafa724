import { Injectable } from '@nestjs/common';
import { DatabaseRepository } from '../repositories/database.repository.js';
import { QueueRepository } from '../repositories/queue.repository.js';
import { StorageRepository } from '../repositories/storage.repository.js';

export interface DependencyCheck {
  ok: boolean;
  ms: number;
  error?: string;
}

export interface ReadinessReport {
  status: 'ok' | 'unavailable';
  checks: { redis: DependencyCheck; postgres: DependencyCheck; s3: DependencyCheck };
}

const CHECK_TIMEOUT_MS = 3_000;

async function timed(check: () => Promise<unknown>): Promise<DependencyCheck> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      check(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
      }),
    ]);
    return { ok: true, ms: Math.round(performance.now() - started) };
  } catch (err) {
    return { ok: false, ms: Math.round(performance.now() - started), error: (err as Error)?.message ?? String(err) };
  } finally {
    clearTimeout(timer);
  }
}

@Injectable()
export class HealthService {
  constructor(
    private readonly database: DatabaseRepository,
    private readonly queues: QueueRepository,
    private readonly storage: StorageRepository,
  ) {}

  /** Ready = every dependency a build submission needs answers (checked in parallel). */
  async readiness(): Promise<ReadinessReport> {
    const [redis, postgres, s3] = await Promise.all([
      timed(() => this.queues.ping()),
      timed(() => this.database.ping()),
      timed(() => this.storage.checkBucket()),
    ]);
    const ok = redis.ok && postgres.ok && s3.ok;
    return { status: ok ? 'ok' : 'unavailable', checks: { redis, postgres, s3 } };
  }
}
