import { Injectable, Logger } from '@nestjs/common';
import { VersionRepository, type CachedVersionInput, type CreatedCachedVersion } from '../../../../libs/registry/index.js';

/** Bounds one transaction's statement size; the rest waits for the next commit. */
const MAX_BATCH = 200;

interface Pending {
  input: CachedVersionInput;
  resolve(created: CreatedCachedVersion): void;
  reject(err: unknown): void;
}

/**
 * Group commit for fully cached pushes. Pushes of one model are serialized by the
 * model-row lock and each commit waits for its WAL flush, so one transaction per
 * push caps a model at one push per flush. Here, while a model's transaction is
 * in flight, its next pushes wait in a queue and go out together in the next
 * one: same gap-free numbering and durability, one flush per batch. Nothing
 * waits on a timer: a lone push commits at once.
 */
@Injectable()
export class CachedVersionBatcher {
  private readonly logger = new Logger('CachedVersionBatcher');
  private readonly queues = new Map<string, Pending[]>();

  constructor(private readonly versions: VersionRepository) {}

  register(modelName: string, input: CachedVersionInput): Promise<CreatedCachedVersion> {
    return new Promise((resolve, reject) => {
      const queue = this.queues.get(modelName);
      if (queue) {
        queue.push({ input, resolve, reject });
        return;
      }
      this.queues.set(modelName, [{ input, resolve, reject }]);
      void this.drain(modelName);
    });
  }

  /** Commits the model's queue batch by batch until it is empty, then forgets the model. */
  private async drain(modelName: string): Promise<void> {
    const queue = this.queues.get(modelName)!;
    while (queue.length) {
      const batch = queue.splice(0, MAX_BATCH);
      try {
        const created = await this.versions.createCachedVersions(
          modelName,
          batch.map((p) => p.input),
        );
        batch.forEach((p, i) => p.resolve(created[i]));
      } catch (err) {
        if (batch.length === 1) {
          batch[0].reject(err);
          continue;
        }
        // One bad push must not fail its neighbours: retry them one by one.
        this.logger.warn(`batch of ${batch.length} cached pushes of ${modelName} failed (${(err as Error).message}); retrying one by one`);
        for (const p of batch) {
          try {
            const [created] = await this.versions.createCachedVersions(modelName, [p.input]);
            p.resolve(created);
          } catch (single) {
            p.reject(single);
          }
        }
      }
    }
    this.queues.delete(modelName);
  }
}
