import type { FastifyRequest } from 'fastify';
import type { ApiAppConfig } from '../api-config.token.js';

/** Absolute base URL of the API: PUBLIC_URL when set, else what the client used to reach us. */
export function apiBaseUrl(config: ApiAppConfig, request: FastifyRequest): string {
  if (config.api.publicUrl) return config.api.publicUrl;
  return `${request.protocol}://${request.host || `${config.api.host}:${config.api.port}`}`;
}

export const paths = {
  build: (buildId: string) => `/v1/builds/${buildId}`,
  model: (name: string) => `/v1/models/${encodeURIComponent(name)}/versions`,
  version: (name: string, version: number) => `/v1/models/${encodeURIComponent(name)}/versions/${version}`,
  plan: (name: string, version: number, target: string) =>
    `/v1/models/${encodeURIComponent(name)}/versions/${version}/plans/${target}`,
};
