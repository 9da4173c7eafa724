import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Builds can be cancelled (DELETE /v1/builds/:id): `cancelled` becomes a status
 * of builds, of their targets and of the version a cancelled build was making.
 * down() turns cancelled rows into failed ones (error code E_CANCELLED is kept)
 * so the original constraints hold again.
 */
export class BuildCancellation1764300000000 implements MigrationInterface {
  name = 'BuildCancellation1764300000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE builds DROP CONSTRAINT ck_builds_status`);
    await q.query(`ALTER TABLE builds ADD CONSTRAINT ck_builds_status CHECK (status IN ('queued', 'running', 'succeeded', 'partial', 'failed', 'cancelled'))`);
    await q.query(`ALTER TABLE build_targets DROP CONSTRAINT ck_build_targets_status`);
    await q.query(`ALTER TABLE build_targets ADD CONSTRAINT ck_build_targets_status CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled'))`);
    await q.query(`ALTER TABLE model_versions DROP CONSTRAINT ck_model_versions_status`);
    await q.query(
      `ALTER TABLE model_versions ADD CONSTRAINT ck_model_versions_status CHECK (status IN ('building', 'complete', 'partial', 'failed', 'cancelled'))`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`UPDATE model_versions SET status = 'failed' WHERE status = 'cancelled'`);
    await q.query(`UPDATE build_targets SET status = 'failed' WHERE status = 'cancelled'`);
    await q.query(`UPDATE builds SET status = 'failed' WHERE status = 'cancelled'`);
    await q.query(`ALTER TABLE model_versions DROP CONSTRAINT ck_model_versions_status`);
    await q.query(`ALTER TABLE model_versions ADD CONSTRAINT ck_model_versions_status CHECK (status IN ('building', 'complete', 'partial', 'failed'))`);
    await q.query(`ALTER TABLE build_targets DROP CONSTRAINT ck_build_targets_status`);
    await q.query(`ALTER TABLE build_targets ADD CONSTRAINT ck_build_targets_status CHECK (status IN ('queued', 'running', 'succeeded', 'failed'))`);
    await q.query(`ALTER TABLE builds DROP CONSTRAINT ck_builds_status`);
    await q.query(`ALTER TABLE builds ADD CONSTRAINT ck_builds_status CHECK (status IN ('queued', 'running', 'succeeded', 'partial', 'failed'))`);
  }
}
