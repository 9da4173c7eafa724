import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * notification_outbox: outgoing rollout webhooks, written in the transaction that
 * rolls back or completes the rollout (a transactional outbox), delivered by any API
 * instance with retries that survive restarts. Rows are claimed with a lease
 * (next_attempt_at pushed forward, FOR UPDATE SKIP LOCKED), so one delivery attempt runs
 * at a time across instances; the row id is the delivery id receivers can dedupe on.
 */
export class NotificationOutbox1764800000000 implements MigrationInterface {
  name = 'NotificationOutbox1764800000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE notification_outbox (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        channel_id uuid NOT NULL,
        event text NOT NULL,
        body jsonb NOT NULL,
        status text NOT NULL DEFAULT 'pending',
        attempts integer NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL DEFAULT now(),
        last_error text NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        finished_at timestamptz NULL,
        CONSTRAINT fk_notification_outbox_channel FOREIGN KEY (channel_id) REFERENCES channels (id) ON DELETE CASCADE,
        CONSTRAINT ck_notification_outbox_status CHECK (status IN ('pending', 'delivered', 'failed')),
        CONSTRAINT ck_notification_outbox_attempts CHECK (attempts >= 0)
      )`);
    await q.query(`CREATE INDEX ix_notification_outbox_due ON notification_outbox (next_attempt_at) WHERE status = 'pending'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX ix_notification_outbox_due`);
    await q.query(`DROP TABLE notification_outbox`);
  }
}
