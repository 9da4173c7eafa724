import type { ApiAppConfig } from '../../../libs/config/index.js';

/** Injection token of the validated configuration the app was created with. */
export const API_CONFIG = Symbol('API_CONFIG');

export type { ApiAppConfig };
