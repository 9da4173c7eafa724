import type { DataSource } from 'typeorm';

export type IdempotencyClaim =
  | { state: 'claimed' }
  | { state: 'replay'; buildId: string | null; response: Record<string, unknown> }
  | { state: 'in-progress' }
  | { state: 'conflict' };

/** Idempotency-Key records, scoped per API key, kept 24 hours. */
export class IdempotencyRepository {
  constructor(private readonly ds: DataSource) {}

  /**
   * Claims (scope, key) for a request hash. The first caller gets 'claimed' and must
   * complete() or release(); later callers get the stored response, 'in-progress'
   * while the first one runs, or 'conflict' when their request differs.
   */
  async claim(scope: string, key: string, requestHash: string): Promise<IdempotencyClaim> {
    // Keys live 24 hours; a claim never completed within an hour (the longest a request may take)
    // belongs to a request that died with its API process.
    await this.ds.query(
      `DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2
         AND (created_at < now() - interval '24 hours' OR (response IS NULL AND created_at < now() - interval '1 hour'))`,
      [scope, key],
    );
    const inserted: unknown[] = await this.ds.query(
      `INSERT INTO idempotency_keys (scope, key, request_hash) VALUES ($1, $2, $3) ON CONFLICT (scope, key) DO NOTHING RETURNING key`,
      [scope, key, requestHash],
    );
    if (inserted.length) return { state: 'claimed' };
    const rows: { request_hash: string; build_id: string | null; response: Record<string, unknown> | null }[] = await this.ds.query(
      `SELECT request_hash, build_id, response FROM idempotency_keys WHERE scope = $1 AND key = $2`,
      [scope, key],
    );
    if (!rows.length) return this.claim(scope, key, requestHash); // released in between: try again
    const row = rows[0];
    if (row.request_hash !== requestHash) return { state: 'conflict' };
    if (!row.response) return { state: 'in-progress' };
    return { state: 'replay', buildId: row.build_id, response: row.response };
  }

  async complete(scope: string, key: string, buildId: string, response: Record<string, unknown>): Promise<void> {
    await this.ds.query(`UPDATE idempotency_keys SET build_id = $3, response = $4 WHERE scope = $1 AND key = $2`, [
      scope,
      key,
      buildId,
      JSON.stringify(response),
    ]);
  }

  /** The request failed: the key may be used again. */
  async release(scope: string, key: string): Promise<void> {
    await this.ds.query(`DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND response IS NULL`, [scope, key]);
  }
}
