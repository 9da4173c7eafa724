import { SetMetadata } from '@nestjs/common';
import type { ApiKeyRole } from '../../../../libs/registry/index.js';

export const ROLE_METADATA = 'planforge:role';

export type RouteAccess = ApiKeyRole | 'public';

/** The least role a key needs for this route (admin ⊃ submitter ⊃ viewer). Routes without it need admin. */
export const RequireRole = (role: ApiKeyRole) => SetMetadata(ROLE_METADATA, role satisfies RouteAccess);

/** No API key needed: health probes, and webhooks (they carry their own signatures). */
export const Public = () => SetMetadata(ROLE_METADATA, 'public' satisfies RouteAccess);
