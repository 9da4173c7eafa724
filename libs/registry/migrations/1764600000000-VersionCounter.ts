import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * models.last_version: the newest version number handed out for a model. A push
 * takes its number with one `INSERT … ON CONFLICT DO UPDATE SET last_version =
 * last_version + n RETURNING` (which waits for, then sees, the previous push's
 * commit), so registering a push fits in one statement. Numbers stay gap-free (a
 * rolled-back push rolls the counter back) and are never reused after a delete.
 */
export class VersionCounter1764600000000 implements MigrationInterface {
  name = 'VersionCounter1764600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE models ADD COLUMN last_version integer NOT NULL DEFAULT 0`);
    await q.query(`UPDATE models m SET last_version = COALESCE((SELECT max(v.version) FROM model_versions v WHERE v.model_id = m.id), 0)`);
    await q.query(`ALTER TABLE models ADD CONSTRAINT ck_models_last_version CHECK (last_version >= 0)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE models DROP CONSTRAINT ck_models_last_version`);
    await q.query(`ALTER TABLE models DROP COLUMN last_version`);
  }
}
