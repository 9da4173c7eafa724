import type { DataSource, EntityManager } from 'typeorm';
import { isUuid } from '../registry-error.js';

/** What only admins do to versions. */
export class VersionAdminRepository {
  constructor(private readonly ds: DataSource) {}

  /**
   * Deletes a version with its builds and plan rows (the S3 objects stay: they are
   * content-addressed and may be shared with other versions through the build cache).
   * The caller checks channels first; the channel_pointers foreign keys refuse anyway.
   */
  async deleteVersion(versionId: string, em?: EntityManager): Promise<boolean> {
    if (!isUuid(versionId)) return false;
    const q = em ?? this.ds;
    // model_versions.build_id -> builds -> model_versions: clear the back reference first.
    await q.query(`UPDATE model_versions SET build_id = NULL WHERE id = $1`, [versionId]);
    const result: [unknown[], number] = await q.query(`DELETE FROM model_versions WHERE id = $1`, [versionId]);
    return result[1] > 0;
  }
}
