import type { DataSource, EntityManager } from 'typeorm';

export interface AuditEntryInput {
  actorKeyId: string | null;
  /** The API key's name (or "configuration", "auth-disabled"). */
  actor: string;
  /** e.g. channel.promote, channel.rollback, key.create, key.revoke, trigger.create, version.delete. */
  action: string;
  /** What it acted on, e.g. "model detector channel production", "key <id>". */
  subject: string;
  details?: Record<string, unknown>;
  requestId?: string | null;
}

export interface AuditEntry {
  id: number;
  actorKeyId: string | null;
  actor: string;
  action: string;
  subject: string;
  details: Record<string, unknown>;
  requestId: string | null;
  createdAt: Date;
}

interface AuditRow {
  id: string;
  actor_key_id: string | null;
  actor: string;
  action: string;
  subject: string;
  details: Record<string, unknown>;
  request_id: string | null;
  created_at: Date;
}

/** Append-only log of admin actions. */
export class AuditLogRepository {
  constructor(private readonly ds: DataSource) {}

  /** Pass the transaction's manager so the entry commits (or not) with the action itself. */
  async record(entry: AuditEntryInput, em?: EntityManager): Promise<void> {
    await (em ?? this.ds).query(
      `INSERT INTO audit_log (actor_key_id, actor, action, subject, details, request_id) VALUES ($1, $2, $3, $4, $5, $6)`,
      [entry.actorKeyId, entry.actor, entry.action, entry.subject, JSON.stringify(entry.details ?? {}), entry.requestId ?? null],
    );
  }

  /** Newest first; `before` pages backwards by id; `action` filters exactly or by prefix ("channel."). */
  async list(opts: { limit?: number; before?: number; action?: string } = {}): Promise<AuditEntry[]> {
    const limit = Math.min(Math.max(opts.limit ?? 100, 1), 1000);
    const params: unknown[] = [];
    const where: string[] = [];
    if (opts.before !== undefined) {
      params.push(opts.before);
      where.push(`id < $${params.length}`);
    }
    if (opts.action) {
      params.push(opts.action.endsWith('.') ? `${opts.action.replace(/[%_\\]/g, '\\$&')}%` : opts.action);
      where.push(opts.action.endsWith('.') ? `action LIKE $${params.length}` : `action = $${params.length}`);
    }
    params.push(limit);
    const rows: AuditRow[] = await this.ds.query(
      `SELECT * FROM audit_log ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT $${params.length}`,
      params,
    );
    return rows.map((r) => ({
      id: Number(r.id),
      actorKeyId: r.actor_key_id,
      actor: r.actor,
      action: r.action,
      subject: r.subject,
      details: r.details,
      requestId: r.request_id,
      createdAt: r.created_at,
    }));
  }
}
