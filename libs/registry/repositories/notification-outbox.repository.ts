import type { DataSource, EntityManager } from 'typeorm';

export interface OutboxNotification {
  id: string;
  channelId: string;
  event: string;
  body: Record<string, unknown>;
  /** Attempts made before this one. */
  attempts: number;
  /** The channel's rollout policy webhook at claim time (null: none configured any more). */
  webhookUrl: string | null;
  webhookSecret: string | null;
}

/** Outgoing notifications (table notification_outbox): enqueued with the change they report, delivered with leases. */
export class NotificationOutboxRepository {
  constructor(private readonly ds: DataSource) {}

  /** In the caller's transaction: the notification exists if and only if the change commits. */
  async enqueue(em: EntityManager, channelId: string, event: string, body: Record<string, unknown>): Promise<string> {
    const [row]: { id: string }[] = await em.query(`INSERT INTO notification_outbox (channel_id, event, body) VALUES ($1, $2, $3) RETURNING id`, [
      channelId,
      event,
      JSON.stringify(body),
    ]);
    return row.id;
  }

  /**
   * Claims up to `limit` due notifications for `leaseMs`: their next attempt moves past
   * the lease and their attempt count goes up, so no other instance picks them meanwhile
   * and a claimer that dies leaves them to be retried when the lease ends.
   */
  async claimDue(limit: number, leaseMs: number): Promise<OutboxNotification[]> {
    type Row = {
      id: string;
      channel_id: string;
      event: string;
      body: Record<string, unknown>;
      attempts: number;
      webhook_url: string | null;
      webhook_secret: string | null;
    };
    // An UPDATE answers [rows, affected count] through TypeORM's query().
    const [rows]: [Row[], number] = await this.ds.query(
      `WITH due AS (
         SELECT id FROM notification_outbox WHERE status = 'pending' AND next_attempt_at <= now()
         ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED
       )
       UPDATE notification_outbox o SET attempts = o.attempts + 1, next_attempt_at = now() + make_interval(secs => $2::double precision / 1000)
       FROM due WHERE o.id = due.id
       RETURNING o.id, o.channel_id, o.event, o.body, o.attempts - 1 AS attempts,
         (SELECT webhook_url FROM rollout_policies p WHERE p.channel_id = o.channel_id) AS webhook_url,
         (SELECT webhook_secret FROM rollout_policies p WHERE p.channel_id = o.channel_id) AS webhook_secret`,
      [limit, leaseMs],
    );
    return rows.map((r) => ({
      id: r.id,
      channelId: r.channel_id,
      event: r.event,
      body: r.body,
      attempts: r.attempts,
      webhookUrl: r.webhook_url,
      webhookSecret: r.webhook_secret,
    }));
  }

  async delivered(id: string): Promise<void> {
    await this.ds.query(`UPDATE notification_outbox SET status = 'delivered', finished_at = now(), last_error = NULL WHERE id = $1`, [id]);
  }

  /** Another attempt after `delayMs`, or (final) failed for good. */
  async attemptFailed(id: string, error: string, final: boolean, delayMs: number): Promise<void> {
    await this.ds.query(
      final
        ? `UPDATE notification_outbox SET status = 'failed', finished_at = now(), last_error = $2 WHERE id = $1`
        : `UPDATE notification_outbox SET next_attempt_at = now() + make_interval(secs => $3::double precision / 1000), last_error = $2 WHERE id = $1`,
      final ? [id, error.slice(0, 1000)] : [id, error.slice(0, 1000), delayMs],
    );
  }

  /** When the next pending notification is due (null: none), to sleep until then. */
  async nextDue(): Promise<Date | null> {
    const [row]: { at: Date | null }[] = await this.ds.query(`SELECT min(next_attempt_at) AS at FROM notification_outbox WHERE status = 'pending'`);
    return row?.at ?? null;
  }
}
