import type { z } from 'zod';
import { ApiError } from '../errors/api.error.js';

/** Parses a JSON body (or query) with a zod schema; 400 naming each bad field. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, what = 'body'): z.output<S> {
  const parsed = schema.safeParse(input ?? {});
  if (parsed.success) return parsed.data;
  const errors = parsed.error.issues.map((i) => ({ field: i.path.length ? i.path.join('.') : what, message: i.message }));
  throw ApiError.badRequest(`invalid ${what}: ${errors.map((e) => `${e.field}: ${e.message}`).join('; ')}`, errors);
}
