import { AsyncLocalStorage } from 'node:async_hooks';

/** What every log line written while serving a request carries. */
export interface RequestContext {
  requestId: string;
  method: string;
  /** Set when the route names a build (/v1/builds/:id…). */
  buildId?: string;
}

export const requestContext = new AsyncLocalStorage<RequestContext>();
