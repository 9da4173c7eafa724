import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The registry's first schema. Statuses are text + CHECK rather than enum types:
 * adding a status later is one constraint swap, not an ALTER TYPE outside a transaction.
 */
export class Init1764000000000 implements MigrationInterface {
  name = 'Init1764000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE models (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT uq_models_name UNIQUE (name)
      )`);
    await q.query(`
      CREATE TABLE model_versions (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        model_id uuid NOT NULL,
        version integer NOT NULL,
        status text NOT NULL DEFAULT 'building',
        model_sha256 text NOT NULL,
        model_key text NOT NULL,
        model_size bigint NOT NULL,
        spec jsonb NOT NULL,
        spec_hash text NOT NULL,
        build_id uuid NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        completed_at timestamptz NULL,
        error jsonb NULL,
        CONSTRAINT uq_model_versions_model_version UNIQUE (model_id, version),
        CONSTRAINT fk_model_versions_model FOREIGN KEY (model_id) REFERENCES models (id) ON DELETE RESTRICT,
        CONSTRAINT ck_model_versions_version CHECK (version >= 1),
        CONSTRAINT ck_model_versions_status CHECK (status IN ('building', 'complete', 'partial', 'failed')),
        CONSTRAINT ck_model_versions_model_sha256 CHECK (model_sha256 ~ '^[0-9a-f]{64}$'),
        CONSTRAINT ck_model_versions_model_size CHECK (model_size >= 0)
      )`);
    await q.query(`CREATE INDEX ix_model_versions_model_sha256 ON model_versions (model_sha256)`);
    await q.query(`
      CREATE TABLE builds (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        model_version_id uuid NOT NULL,
        status text NOT NULL DEFAULT 'queued',
        spec jsonb NOT NULL,
        targets text[] NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        started_at timestamptz NULL,
        finished_at timestamptz NULL,
        error text NULL,
        CONSTRAINT fk_builds_model_version FOREIGN KEY (model_version_id) REFERENCES model_versions (id) ON DELETE CASCADE,
        CONSTRAINT ck_builds_status CHECK (status IN ('queued', 'running', 'succeeded', 'partial', 'failed')),
        CONSTRAINT ck_builds_targets CHECK (cardinality(targets) >= 1)
      )`);
    await q.query(`CREATE INDEX ix_builds_model_version_id ON builds (model_version_id)`);
    // model_versions.build_id points at the version's build; added here because builds did not exist above.
    await q.query(`
      ALTER TABLE model_versions
        ADD CONSTRAINT fk_model_versions_build FOREIGN KEY (build_id) REFERENCES builds (id) ON DELETE SET NULL`);
    await q.query(`
      CREATE TABLE build_targets (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        build_id uuid NOT NULL,
        target text NOT NULL,
        status text NOT NULL DEFAULT 'queued',
        attempts integer NOT NULL DEFAULT 0,
        progress real NOT NULL DEFAULT 0,
        stage text NULL,
        worker_id text NULL,
        started_at timestamptz NULL,
        finished_at timestamptz NULL,
        error_code text NULL,
        error_message text NULL,
        CONSTRAINT uq_build_targets_build_target UNIQUE (build_id, target),
        CONSTRAINT fk_build_targets_build FOREIGN KEY (build_id) REFERENCES builds (id) ON DELETE CASCADE,
        CONSTRAINT ck_build_targets_status CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
        CONSTRAINT ck_build_targets_attempts CHECK (attempts >= 0),
        CONSTRAINT ck_build_targets_progress CHECK (progress >= 0 AND progress <= 100)
      )`);
    await q.query(`
      CREATE TABLE plans (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        model_version_id uuid NOT NULL,
        target text NOT NULL,
        s3_key text NOT NULL,
        sha256 text NOT NULL,
        size bigint NOT NULL,
        precision text NOT NULL,
        tuned boolean NOT NULL DEFAULT false,
        optimizer_version text NOT NULL,
        header jsonb NOT NULL,
        verification jsonb NULL,
        build_ms integer NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT uq_plans_version_target UNIQUE (model_version_id, target),
        CONSTRAINT fk_plans_model_version FOREIGN KEY (model_version_id) REFERENCES model_versions (id) ON DELETE CASCADE,
        CONSTRAINT ck_plans_sha256 CHECK (sha256 ~ '^[0-9a-f]{64}$'),
        CONSTRAINT ck_plans_size CHECK (size >= 0)
      )`);
    await q.query(`CREATE INDEX ix_plans_sha256 ON plans (sha256)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX ix_plans_sha256`);
    await q.query(`DROP TABLE plans`);
    await q.query(`DROP TABLE build_targets`);
    await q.query(`ALTER TABLE model_versions DROP CONSTRAINT fk_model_versions_build`);
    await q.query(`DROP INDEX ix_builds_model_version_id`);
    await q.query(`DROP TABLE builds`);
    await q.query(`DROP INDEX ix_model_versions_model_sha256`);
    await q.query(`DROP TABLE model_versions`);
    await q.query(`DROP TABLE models`);
  }
}
