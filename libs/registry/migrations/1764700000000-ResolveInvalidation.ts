import type { MigrationInterface, QueryRunner } from 'typeorm';

/** The channel the API's resolve caches LISTEN on (apps/api/src/repositories/resolve-cache.repository.ts). */
const CHANNEL = 'planforge_resolve_changed';

/**
 * Per table that GET /v1/resolve reads (RolloutRepository.resolve), the writes
 * that can change a result. Column lists name the columns the query reads, so
 * frequent writes of other columns (version status, plan profiles, channel
 * updated_at, rollout decisions) do not empty the caches. Inserts into plans,
 * model_versions and models cannot change a result the cache holds: the pointer
 * names its plan and version by id, and a model name is unique (the API never
 * caches a result that depends on a row being absent: see the cache).
 */
const TRIGGERS: { table: string; events: string }[] = [
  { table: 'channel_pointers', events: 'INSERT OR UPDATE OR DELETE OR TRUNCATE' },
  { table: 'channels', events: 'INSERT OR UPDATE OF id, model_id, name OR DELETE OR TRUNCATE' },
  { table: 'rollouts', events: 'INSERT OR UPDATE OF id, channel_id, version, from_versions, canary_bp, state OR DELETE OR TRUNCATE' },
  { table: 'plans', events: 'UPDATE OF id, model_version_id, target, s3_key, sha256, size, precision, optimizer_version OR DELETE OR TRUNCATE' },
  { table: 'model_versions', events: 'UPDATE OF id, model_id, version OR DELETE OR TRUNCATE' },
  { table: 'models', events: 'UPDATE OF id, name OR DELETE OR TRUNCATE' },
];

const triggerName = (table: string) => `trg_${table}_resolve_changed`;

/**
 * Resolve cache invalidation from the database itself: statement-level AFTER
 * triggers on every table the resolve query reads send
 * NOTIFY planforge_resolve_changed, so every write path (channel moves, the
 * rollout watcher, admin deletes, manual SQL) empties the cache of every API
 * instance. Postgres delivers the notification when the writing transaction
 * commits, and folds the duplicates of one transaction into one.
 */
export class ResolveInvalidation1764700000000 implements MigrationInterface {
  name = 'ResolveInvalidation1764700000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE FUNCTION planforge_notify_resolve_changed() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_notify('${CHANNEL}', '');
        RETURN NULL;
      END
      $$`);
    for (const t of TRIGGERS) {
      await q.query(`CREATE TRIGGER ${triggerName(t.table)} AFTER ${t.events} ON ${t.table} FOR EACH STATEMENT EXECUTE FUNCTION planforge_notify_resolve_changed()`);
    }
  }

  async down(q: QueryRunner): Promise<void> {
    for (const t of [...TRIGGERS].reverse()) await q.query(`DROP TRIGGER ${triggerName(t.table)} ON ${t.table}`);
    await q.query(`DROP FUNCTION planforge_notify_resolve_changed()`);
  }
}
