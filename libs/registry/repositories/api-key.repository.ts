import { createHash, randomBytes } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { RegistryError, isUuid } from '../registry-error.js';

/**
 * A lattice, not a line: viewer ⊂ submitter ⊂ admin, and reporter ⊂ admin.
 * A reporter (inference servers, devices) may only send telemetry: it cannot read
 * or submit; viewers and submitters cannot report. Admins may do everything.
 */
export const API_KEY_ROLES = ['viewer', 'submitter', 'admin', 'reporter'] as const;
export type ApiKeyRole = (typeof API_KEY_ROLES)[number];

/** The read/submit/administer chain; reporter sits beside it, below admin only. */
const ROLE_CHAIN: readonly ApiKeyRole[] = ['viewer', 'submitter', 'admin'];

export function isApiKeyRole(value: unknown): value is ApiKeyRole {
  return typeof value === 'string' && (API_KEY_ROLES as readonly string[]).includes(value);
}

/** True when a key of role `have` may do what needs `need`. */
export function roleSatisfies(have: ApiKeyRole, need: ApiKeyRole): boolean {
  if (have === need || have === 'admin') return true;
  if (have === 'reporter' || need === 'reporter') return false;
  return ROLE_CHAIN.indexOf(have) >= ROLE_CHAIN.indexOf(need);
}

export const API_KEY_PREFIX = 'pf_';

/** Postgres NOTIFY channel of revocations: API instances that cache key lookups drop them on it. */
export const API_KEY_REVOKED_CHANNEL = 'planforge_api_key_revoked';

/** Keys are 256 random bits: a plain sha256 is enough to store them (no salt or slow hash needed). */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

export interface ApiKeyRecord {
  id: string;
  name: string;
  role: ApiKeyRole;
  /** The first characters of the key, to recognize it in listings. */
  keyPrefix: string;
  createdBy: string | null;
  createdAt: Date;
  revokedAt: Date | null;
}

interface ApiKeyRow {
  id: string;
  name: string;
  role: ApiKeyRole;
  key_prefix: string;
  created_by: string | null;
  created_at: Date;
  revoked_at: Date | null;
}

const COLUMNS = 'id, name, role, key_prefix, created_by, created_at, revoked_at';

function toRecord(r: ApiKeyRow): ApiKeyRecord {
  return { id: r.id, name: r.name, role: r.role, keyPrefix: r.key_prefix, createdBy: r.created_by, createdAt: r.created_at, revokedAt: r.revoked_at };
}

/** API keys, stored as sha256 of the key; the key itself is shown once, at creation. */
export class ApiKeyRepository {
  constructor(private readonly ds: DataSource) {}

  /** Mints a new key: `pf_` + 43 base64url characters. Returns the key once; only its hash is stored. */
  async create(input: { name: string; role: ApiKeyRole; createdBy?: string | null }): Promise<{ record: ApiKeyRecord; key: string }> {
    if (!isApiKeyRole(input.role)) throw new RegistryError('E_INVALID', `unknown role ${String(input.role)}`);
    const key = API_KEY_PREFIX + randomBytes(32).toString('base64url');
    const [row]: ApiKeyRow[] = await this.ds.query(
      `INSERT INTO api_keys (name, role, key_hash, key_prefix, created_by) VALUES ($1, $2, $3, $4, $5) RETURNING ${COLUMNS}`,
      [input.name, input.role, hashApiKey(key), key.slice(0, 10), input.createdBy ?? null],
    );
    return { record: toRecord(row), key };
  }

  /**
   * Makes sure a key given by configuration exists (ADMIN_API_KEY). A key that was
   * revoked stays revoked: configuration does not silently undo an operator's revocation.
   */
  async ensure(input: { key: string; name: string; role: ApiKeyRole }): Promise<{ record: ApiKeyRecord; created: boolean }> {
    const hash = hashApiKey(input.key);
    const inserted: ApiKeyRow[] = await this.ds.query(
      `INSERT INTO api_keys (name, role, key_hash, key_prefix, created_by) VALUES ($1, $2, $3, $4, 'configuration')
       ON CONFLICT (key_hash) DO NOTHING RETURNING ${COLUMNS}`,
      [input.name, input.role, hash, input.key.slice(0, 10)],
    );
    if (inserted.length) return { record: toRecord(inserted[0]), created: true };
    const [row]: ApiKeyRow[] = await this.ds.query(`SELECT ${COLUMNS} FROM api_keys WHERE key_hash = $1`, [hash]);
    return { record: toRecord(row), created: false };
  }

  /** The active key with this secret, or null (unknown or revoked). One indexed lookup, no cache: revocation is immediate. */
  async findActive(key: string): Promise<ApiKeyRecord | null> {
    const rows: ApiKeyRow[] = await this.ds.query(`SELECT ${COLUMNS} FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL`, [hashApiKey(key)]);
    return rows.length ? toRecord(rows[0]) : null;
  }

  /** Active admin keys: none means nobody can manage the farm (see the create-admin-key CLI). */
  async countActiveAdmins(): Promise<number> {
    const [{ n }]: { n: number }[] = await this.ds.query(`SELECT count(*)::int AS n FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL`);
    return n;
  }

  async list(): Promise<ApiKeyRecord[]> {
    const rows: ApiKeyRow[] = await this.ds.query(`SELECT ${COLUMNS} FROM api_keys ORDER BY created_at, id`);
    return rows.map(toRecord);
  }

  async get(id: string): Promise<ApiKeyRecord | null> {
    if (!isUuid(id)) return null;
    const rows: ApiKeyRow[] = await this.ds.query(`SELECT ${COLUMNS} FROM api_keys WHERE id = $1`, [id]);
    return rows.length ? toRecord(rows[0]) : null;
  }

  /** Idempotent: revoking a revoked key keeps its first revocation time. Null for an unknown id. */
  async revoke(id: string): Promise<ApiKeyRecord | null> {
    if (!isUuid(id)) return null;
    return this.ds.transaction(async (em) => {
      // TypeORM answers UPDATE … RETURNING with [rows, affected].
      const [rows]: [ApiKeyRow[], number] = await em.query(
        `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1 RETURNING ${COLUMNS}`,
        [id],
      );
      // Delivered on commit to every listening API instance.
      if (rows.length) await em.query(`SELECT pg_notify($1, $2)`, [API_KEY_REVOKED_CHANNEL, id]);
      return rows.length ? toRecord(rows[0]) : null;
    });
  }
}
