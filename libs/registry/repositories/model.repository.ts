import type { DataSource } from 'typeorm';
import { ModelEntity } from '../entities/model.entity.js';

export interface ModelSummary extends ModelEntity {
  versionCount: number;
  /** Highest version number, null before the first push. */
  latestVersion: number | null;
}

export class ModelRepository {
  constructor(private readonly ds: DataSource) {}

  /** All models by name, with how many versions each has. */
  async list(): Promise<ModelSummary[]> {
    const rows: { id: string; name: string; created_at: Date; version_count: number; latest_version: number | null }[] =
      await this.ds.query(`
        SELECT m.id, m.name, m.created_at, count(v.id)::int AS version_count, max(v.version) AS latest_version
        FROM models m LEFT JOIN model_versions v ON v.model_id = m.id
        GROUP BY m.id ORDER BY m.name`);
    return rows.map((r) =>
      Object.assign(new ModelEntity(), {
        id: r.id,
        name: r.name,
        createdAt: r.created_at,
        versionCount: r.version_count,
        latestVersion: r.latest_version,
      }),
    );
  }

  findByName(name: string): Promise<ModelEntity | null> {
    return this.ds.getRepository(ModelEntity).findOneBy({ name });
  }
}
