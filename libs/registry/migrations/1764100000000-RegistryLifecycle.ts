import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Registry lifecycle: release channels (a lock row per channel, a pointer per
 * target, an append-only event history), API keys (hashed), the admin audit log,
 * CI webhook triggers and deliveries (replay detection), idempotency keys, and
 * the columns the build cache and version provenance need.
 */
export class RegistryLifecycle1764100000000 implements MigrationInterface {
  name = 'RegistryLifecycle1764100000000';

  async up(q: QueryRunner): Promise<void> {
    // Where a version came from (upload by key X, webhook of repository/ref/commit).
    await q.query(`ALTER TABLE model_versions ADD COLUMN source jsonb NULL`);
    // A target satisfied from the build cache: no job ran for it.
    await q.query(`ALTER TABLE build_targets ADD COLUMN cache_hit boolean NOT NULL DEFAULT false`);
    // Latency measured on a real GPU ({p50Ms, p99Ms, …}); the promotion gate compares p99.
    await q.query(`ALTER TABLE plans ADD COLUMN IF NOT EXISTS profile jsonb NULL`);
    // Build cache lookups: same model bytes + same plan-affecting spec.
    await q.query(`CREATE INDEX ix_model_versions_sha256_spec_hash ON model_versions (model_sha256, spec_hash)`);

    await q.query(`
      CREATE TABLE api_keys (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name text NOT NULL,
        role text NOT NULL,
        key_hash text NOT NULL,
        key_prefix text NOT NULL,
        created_by text NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        revoked_at timestamptz NULL,
        CONSTRAINT uq_api_keys_key_hash UNIQUE (key_hash),
        CONSTRAINT ck_api_keys_role CHECK (role IN ('viewer', 'submitter', 'admin')),
        CONSTRAINT ck_api_keys_key_hash CHECK (key_hash ~ '^[0-9a-f]{64}$')
      )`);

    await q.query(`
      CREATE TABLE audit_log (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        actor_key_id uuid NULL,
        actor text NOT NULL,
        action text NOT NULL,
        subject text NOT NULL,
        details jsonb NOT NULL DEFAULT '{}'::jsonb,
        request_id text NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX ix_audit_log_action ON audit_log (action, id)`);

    await q.query(`
      CREATE TABLE channels (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        model_id uuid NOT NULL,
        name text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT uq_channels_model_name UNIQUE (model_id, name),
        CONSTRAINT fk_channels_model FOREIGN KEY (model_id) REFERENCES models (id) ON DELETE RESTRICT
      )`);
    // RESTRICT: a version (or plan) a channel points at cannot be deleted.
    await q.query(`
      CREATE TABLE channel_pointers (
        channel_id uuid NOT NULL,
        target text NOT NULL,
        model_version_id uuid NOT NULL,
        plan_id uuid NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_channel_pointers PRIMARY KEY (channel_id, target),
        CONSTRAINT fk_channel_pointers_channel FOREIGN KEY (channel_id) REFERENCES channels (id) ON DELETE CASCADE,
        CONSTRAINT fk_channel_pointers_version FOREIGN KEY (model_version_id) REFERENCES model_versions (id) ON DELETE RESTRICT,
        CONSTRAINT fk_channel_pointers_plan FOREIGN KEY (plan_id) REFERENCES plans (id) ON DELETE RESTRICT
      )`);
    await q.query(`CREATE INDEX ix_channel_pointers_model_version_id ON channel_pointers (model_version_id)`);
    // Version numbers, not foreign keys: history outlives deleted versions.
    await q.query(`
      CREATE TABLE channel_events (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        channel_id uuid NOT NULL,
        target text NOT NULL,
        action text NOT NULL,
        from_version integer NULL,
        to_version integer NOT NULL,
        actor_key_id uuid NULL,
        actor text NOT NULL,
        reason text NULL,
        forced boolean NOT NULL DEFAULT false,
        gate jsonb NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT fk_channel_events_channel FOREIGN KEY (channel_id) REFERENCES channels (id) ON DELETE CASCADE,
        CONSTRAINT ck_channel_events_action CHECK (action IN ('promote', 'rollback'))
      )`);
    await q.query(`CREATE INDEX ix_channel_events_channel_target ON channel_events (channel_id, target, id)`);

    // The secret signs deliveries (HMAC), so it is stored as is and never returned.
    await q.query(`
      CREATE TABLE webhook_triggers (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        provider text NOT NULL,
        repository text NOT NULL,
        secret text NOT NULL,
        model_name text NOT NULL,
        spec jsonb NOT NULL,
        source jsonb NOT NULL,
        created_by text NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT uq_webhook_triggers_provider_repository UNIQUE (provider, repository),
        CONSTRAINT ck_webhook_triggers_provider CHECK (provider IN ('github', 'gitlab', 'generic'))
      )`);
    await q.query(`
      CREATE TABLE webhook_deliveries (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        provider text NOT NULL,
        delivery_id text NOT NULL,
        trigger_id uuid NULL,
        event text NOT NULL,
        build_id uuid NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT uq_webhook_deliveries_provider_delivery UNIQUE (provider, delivery_id),
        CONSTRAINT fk_webhook_deliveries_trigger FOREIGN KEY (trigger_id) REFERENCES webhook_triggers (id) ON DELETE SET NULL
      )`);

    // scope: the API key id (or 'anonymous' with auth disabled): keys of different callers never collide.
    await q.query(`
      CREATE TABLE idempotency_keys (
        scope text NOT NULL,
        key text NOT NULL,
        request_hash text NOT NULL,
        build_id uuid NULL,
        response jsonb NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_idempotency_keys PRIMARY KEY (scope, key)
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE idempotency_keys`);
    await q.query(`DROP TABLE webhook_deliveries`);
    await q.query(`DROP TABLE webhook_triggers`);
    await q.query(`DROP INDEX ix_channel_events_channel_target`);
    await q.query(`DROP TABLE channel_events`);
    await q.query(`DROP INDEX ix_channel_pointers_model_version_id`);
    await q.query(`DROP TABLE channel_pointers`);
    await q.query(`DROP TABLE channels`);
    await q.query(`DROP INDEX ix_audit_log_action`);
    await q.query(`DROP TABLE audit_log`);
    await q.query(`DROP TABLE api_keys`);
    await q.query(`DROP INDEX ix_model_versions_sha256_spec_hash`);
    await q.query(`ALTER TABLE plans DROP COLUMN profile`);
    await q.query(`ALTER TABLE build_targets DROP COLUMN cache_hit`);
    await q.query(`ALTER TABLE model_versions DROP COLUMN source`);
  }
}
