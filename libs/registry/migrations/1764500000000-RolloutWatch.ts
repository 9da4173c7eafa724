import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Rollout watch: the `reporter` API key role, fleet telemetry aggregated per
 * (channel, target, version, time bucket), a rollout policy per channel, one
 * rollout row per watched promotion (at most one `watching` per channel), and
 * the versions an automatic rollback took off a channel (not re-promoted
 * without force). down() drops reporter keys so the original constraint holds.
 */
export class RolloutWatch1764500000000 implements MigrationInterface {
  name = 'RolloutWatch1764500000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE api_keys DROP CONSTRAINT ck_api_keys_role`);
    await q.query(`ALTER TABLE api_keys ADD CONSTRAINT ck_api_keys_role CHECK (role IN ('viewer', 'submitter', 'admin', 'reporter'))`);

    // Counters only grow by upsert (requests, errors, … and the latency histogram added
    // element-wise), so a fleet reporting every few seconds updates a handful of rows.
    // fillfactor leaves room on each page for HOT updates (no index column changes).
    await q.query(`
      CREATE TABLE telemetry_buckets (
        channel_id uuid NOT NULL,
        target text NOT NULL,
        version integer NOT NULL,
        bucket_start timestamptz NOT NULL,
        reports bigint NOT NULL,
        requests bigint NOT NULL,
        errors bigint NOT NULL,
        window_ms bigint NOT NULL,
        latency_count bigint NOT NULL,
        latency_hist bigint[] NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_telemetry_buckets PRIMARY KEY (channel_id, target, version, bucket_start),
        CONSTRAINT fk_telemetry_buckets_channel FOREIGN KEY (channel_id) REFERENCES channels (id) ON DELETE CASCADE
      ) WITH (fillfactor = 70)`);

    await q.query(`
      CREATE TABLE rollout_policies (
        channel_id uuid PRIMARY KEY,
        watch_seconds integer NOT NULL,
        min_requests integer NOT NULL,
        baseline_seconds integer NOT NULL,
        max_p99_regression double precision NULL,
        max_error_rate double precision NULL,
        max_throughput_drop double precision NULL,
        canary_percent double precision NULL,
        webhook_url text NULL,
        webhook_secret text NULL,
        updated_by text NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT fk_rollout_policies_channel FOREIGN KEY (channel_id) REFERENCES channels (id) ON DELETE CASCADE
      )`);

    await q.query(`
      CREATE TABLE rollouts (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        channel_id uuid NOT NULL,
        version integer NOT NULL,
        from_versions jsonb NOT NULL,
        targets text[] NOT NULL,
        canary_bp integer NULL,
        state text NOT NULL,
        policy jsonb NOT NULL,
        started_at timestamptz NOT NULL DEFAULT now(),
        watch_until timestamptz NOT NULL,
        decided_at timestamptz NULL,
        decision jsonb NULL,
        reason text NULL,
        created_by text NOT NULL,
        CONSTRAINT fk_rollouts_channel FOREIGN KEY (channel_id) REFERENCES channels (id) ON DELETE CASCADE,
        CONSTRAINT ck_rollouts_state CHECK (state IN ('watching', 'complete', 'rolled_back', 'superseded')),
        CONSTRAINT ck_rollouts_canary_bp CHECK (canary_bp IS NULL OR canary_bp BETWEEN 1 AND 9999)
      )`);
    await q.query(`CREATE UNIQUE INDEX uq_rollouts_channel_watching ON rollouts (channel_id) WHERE state = 'watching'`);
    await q.query(`CREATE INDEX ix_rollouts_channel_started ON rollouts (channel_id, started_at)`);

    await q.query(`
      CREATE TABLE rollout_blocked_versions (
        channel_id uuid NOT NULL,
        version integer NOT NULL,
        rollout_id uuid NULL,
        reason text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_rollout_blocked_versions PRIMARY KEY (channel_id, version),
        CONSTRAINT fk_rollout_blocked_versions_channel FOREIGN KEY (channel_id) REFERENCES channels (id) ON DELETE CASCADE
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE rollout_blocked_versions`);
    await q.query(`DROP INDEX ix_rollouts_channel_started`);
    await q.query(`DROP INDEX uq_rollouts_channel_watching`);
    await q.query(`DROP TABLE rollouts`);
    await q.query(`DROP TABLE rollout_policies`);
    await q.query(`DROP TABLE telemetry_buckets`);
    await q.query(`DELETE FROM api_keys WHERE role = 'reporter'`);
    await q.query(`ALTER TABLE api_keys DROP CONSTRAINT ck_api_keys_role`);
    await q.query(`ALTER TABLE api_keys ADD CONSTRAINT ck_api_keys_role CHECK (role IN ('viewer', 'submitter', 'admin'))`);
  }
}
