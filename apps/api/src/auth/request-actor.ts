import type { FastifyRequest } from 'fastify';
import type { ApiKeyRole } from '../../../../libs/registry/index.js';

/** Who made a request: the API key that authenticated it. */
export interface RequestActor {
  /** null when AUTH_DISABLED (local development). */
  keyId: string | null;
  name: string;
  role: ApiKeyRole;
}

const ACTOR = Symbol('planforge.actor');

type WithActor = FastifyRequest & { [ACTOR]?: RequestActor };

export function setActor(request: FastifyRequest, actor: RequestActor): void {
  (request as WithActor)[ACTOR] = actor;
}

/** Set by ApiKeyGuard on every authenticated route; throws on a public route (a wiring bug). */
export function actorOf(request: FastifyRequest): RequestActor {
  const actor = (request as WithActor)[ACTOR];
  if (!actor) throw new Error(`no authenticated actor on ${request.method} ${request.url}: is the route public?`);
  return actor;
}

/** Idempotency keys and similar per-caller state are scoped by this. */
export function actorScope(actor: RequestActor): string {
  return actor.keyId ?? 'anonymous';
}
