import type { DataSource } from 'typeorm';
import { isUuid } from '../registry-error.js';

export const WEBHOOK_PROVIDERS = ['github', 'gitlab', 'generic'] as const;
export type WebhookProvider = (typeof WEBHOOK_PROVIDERS)[number];

/** Where a trigger finds the ONNX model of a tag. Placeholders: {repository} {tag} {commit} {ref}. */
export type ModelSourceTemplate =
  | { type: 's3'; keyTemplate: string }
  | { type: 'url'; urlTemplate: string; allowedHosts: string[] };

export interface WebhookTrigger {
  id: string;
  provider: WebhookProvider;
  repository: string;
  /** Signs deliveries; never leaves the API. */
  secret: string;
  modelName: string;
  /** Build spec input (validated at creation), without the model name. */
  spec: Record<string, unknown>;
  source: ModelSourceTemplate;
  createdBy: string | null;
  createdAt: Date;
}

interface TriggerRow {
  id: string;
  provider: WebhookProvider;
  repository: string;
  secret: string;
  model_name: string;
  spec: Record<string, unknown>;
  source: ModelSourceTemplate;
  created_by: string | null;
  created_at: Date;
}

function toTrigger(r: TriggerRow): WebhookTrigger {
  return {
    id: r.id,
    provider: r.provider,
    repository: r.repository,
    secret: r.secret,
    modelName: r.model_name,
    spec: r.spec,
    source: r.source,
    createdBy: r.created_by,
    createdAt: r.created_at,
  };
}

export type DeliveryClaim = { state: 'new'; id: string } | { state: 'duplicate'; buildId: string | null };

/** CI triggers (one per provider and repository) and the deliveries they received. */
export class WebhookRepository {
  constructor(private readonly ds: DataSource) {}

  /** Null when the provider already has a trigger for that repository. */
  async createTrigger(input: Omit<WebhookTrigger, 'id' | 'createdAt'>): Promise<WebhookTrigger | null> {
    const rows: TriggerRow[] = await this.ds.query(
      `INSERT INTO webhook_triggers (provider, repository, secret, model_name, spec, source, created_by)
       VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (provider, repository) DO NOTHING RETURNING *`,
      [input.provider, input.repository, input.secret, input.modelName, JSON.stringify(input.spec), JSON.stringify(input.source), input.createdBy],
    );
    return rows.length ? toTrigger(rows[0]) : null;
  }

  async listTriggers(): Promise<WebhookTrigger[]> {
    const rows: TriggerRow[] = await this.ds.query(`SELECT * FROM webhook_triggers ORDER BY provider, repository`);
    return rows.map(toTrigger);
  }

  async findTrigger(provider: WebhookProvider, repository: string): Promise<WebhookTrigger | null> {
    const rows: TriggerRow[] = await this.ds.query(`SELECT * FROM webhook_triggers WHERE provider = $1 AND repository = $2`, [provider, repository]);
    return rows.length ? toTrigger(rows[0]) : null;
  }

  async deleteTrigger(id: string): Promise<WebhookTrigger | null> {
    if (!isUuid(id)) return null;
    // TypeORM answers DELETE … RETURNING with [rows, affected].
    const [rows]: [TriggerRow[], number] = await this.ds.query(`DELETE FROM webhook_triggers WHERE id = $1 RETURNING *`, [id]);
    return rows.length ? toTrigger(rows[0]) : null;
  }

  /** Records a delivery id once (unique per provider): a replay gets the build of the first. */
  async claimDelivery(input: { provider: WebhookProvider; deliveryId: string; triggerId: string; event: string }): Promise<DeliveryClaim> {
    const rows: { id: string }[] = await this.ds.query(
      `INSERT INTO webhook_deliveries (provider, delivery_id, trigger_id, event) VALUES ($1, $2, $3, $4)
       ON CONFLICT (provider, delivery_id) DO NOTHING RETURNING id`,
      [input.provider, input.deliveryId, input.triggerId, input.event],
    );
    if (rows.length) return { state: 'new', id: rows[0].id };
    const existing: { build_id: string | null }[] = await this.ds.query(
      `SELECT build_id FROM webhook_deliveries WHERE provider = $1 AND delivery_id = $2`,
      [input.provider, input.deliveryId],
    );
    return { state: 'duplicate', buildId: existing[0]?.build_id ?? null };
  }

  async setDeliveryBuild(id: string, buildId: string): Promise<void> {
    await this.ds.query(`UPDATE webhook_deliveries SET build_id = $2 WHERE id = $1`, [id, buildId]);
  }

  /** The delivery produced no build (model unreachable, refused): the provider's redelivery may try again. */
  async releaseDelivery(id: string): Promise<void> {
    await this.ds.query(`DELETE FROM webhook_deliveries WHERE id = $1 AND build_id IS NULL`, [id]);
  }
}
