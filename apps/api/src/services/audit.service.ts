import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { z } from 'zod';
import { AuditLogRepository, type AuditEntry } from '../../../../libs/registry/index.js';
import type { RequestActor } from '../auth/request-actor.js';
import { parseInput } from '../dto/validate.js';

export interface AuditEntryDto {
  id: number;
  at: string;
  actor: string;
  actorKeyId: string | null;
  action: string;
  subject: string;
  details: Record<string, unknown>;
  requestId: string | null;
}

const listQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  before: z.coerce.number().int().min(1).optional(),
  action: z.string().regex(/^[a-z][a-z.-]{0,63}$/, 'expected an action like channel.promote, or a prefix like channel.').optional(),
});

/** The admin audit trail: every admin action, who (API key name), when, on what. */
@Injectable()
export class AuditService {
  constructor(private readonly audit: AuditLogRepository) {}

  record(
    actor: RequestActor,
    requestId: string | null,
    action: string,
    subject: string,
    details: Record<string, unknown> = {},
    em?: EntityManager,
  ): Promise<void> {
    return this.audit.record({ actorKeyId: actor.keyId, actor: actor.name, action, subject, details, requestId }, em);
  }

  async list(query: unknown): Promise<{ entries: AuditEntryDto[]; next: number | null }> {
    const q = parseInput(listQuery, query, 'query');
    const entries = await this.audit.list(q);
    return {
      entries: entries.map(toDto),
      // Page backwards with ?before=<next>.
      next: entries.length === q.limit ? entries[entries.length - 1].id : null,
    };
  }
}

function toDto(e: AuditEntry): AuditEntryDto {
  return {
    id: e.id,
    at: e.createdAt.toISOString(),
    actor: e.actor,
    actorKeyId: e.actorKeyId,
    action: e.action,
    subject: e.subject,
    details: e.details,
    requestId: e.requestId,
  };
}
