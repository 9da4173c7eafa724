import { createHash } from 'node:crypto';
import { z } from 'zod';
import { TARGETS, TARGET_ALIASES, expandTargets, type Target } from './targets.js';

export const PRECISIONS = ['fp32', 'fp16', 'int8'] as const;
export type Precision = (typeof PRECISIONS)[number];
export const CALIBRATION_METHODS = ['entropy', 'minmax', 'percentile'] as const;

/** Model names end up in S3 keys, URLs and logs: keep them to a safe alphabet. */
export const MODEL_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,127}$/;

const dims = z.array(z.number().int().min(1).max(1 << 20)).min(1).max(8);

const profileSchema = z
  .object({ min: dims, opt: dims, max: dims })
  .strict()
  .superRefine((p, ctx) => {
    if (p.min.length !== p.opt.length || p.opt.length !== p.max.length) {
      ctx.addIssue({ code: 'custom', message: 'min, opt and max must have the same rank' });
      return;
    }
    p.min.forEach((lo, i) => {
      if (!(lo <= p.opt[i] && p.opt[i] <= p.max[i]))
        ctx.addIssue({ code: 'custom', path: ['opt', i], message: `dimension ${i}: need min <= opt <= max (${lo}, ${p.opt[i]}, ${p.max[i]})` });
    });
  });

const targetName = z.string().refine((t) => (TARGETS as readonly string[]).includes(t.toLowerCase()) || t.toLowerCase() in TARGET_ALIASES, {
  error: (issue) => `unknown target "${String(issue.input)}": expected one of ${[...TARGETS, ...Object.keys(TARGET_ALIASES)].join(', ')}`,
});

export const buildSpecSchema = z
  .object({
    model: z.string().regex(MODEL_NAME_PATTERN, 'model name must match ^[a-z0-9][a-z0-9._-]{0,127}$'),
    targets: z.array(targetName).min(1).max(16),
    precision: z.enum(PRECISIONS).default('fp32'),
    /** Optimization profiles per dynamic input, TensorRT style. */
    profiles: z.record(z.string().min(1).max(256), profileSchema).default({}),
    /** Per-layer precision overrides by original ONNX node name. */
    layerPrecisions: z.record(z.string().min(1).max(512), z.enum(PRECISIONS)).default({}),
    calibration: z
      .object({
        method: z.enum(CALIBRATION_METHODS).default('entropy'),
        percentile: z.number().gt(50).max(100).default(99.99),
      })
      .strict()
      .optional(),
    /**
     * How the worker checks a built plan against the ONNX model (onnxruntime, CPU) before it
     * is stored: `samples` runs on seeded random inputs of the profile's opt shapes; tolerance
     * bounds replace the precision's defaults (apps/worker/src/verification/tolerances.ts).
     */
    verification: z
      .object({
        samples: z.number().int().min(1).max(64).default(4),
        seed: z.number().int().min(0).max(0xffffffff).optional(),
        tolerance: z
          .object({
            maxAbs: z.number().min(0).optional(),
            maxRel: z.number().min(0).optional(),
            minTop1: z.number().min(0).max(1).optional(),
          })
          .strict()
          .optional(),
      })
      .strict()
      .optional(),
    /** Queue priority: release builds run before branch builds; a number is a BullMQ priority (lower first). Not part of the plan. */
    priority: z.union([z.enum(['release', 'branch']), z.number().int().min(1).max(2_097_151)]).optional(),
    /** Free-form labels stored with the version (e.g. git ref); small. */
    labels: z.record(z.string().max(64), z.string().max(256)).default({}),
  })
  .strict();

export type BuildSpecInput = z.input<typeof buildSpecSchema>;
/** A validated spec; targets are expanded and canonical. */
export type BuildSpec = Omit<z.output<typeof buildSpecSchema>, 'targets'> & { targets: Target[] };

export interface FieldError {
  field: string;
  message: string;
}

export class BuildSpecError extends Error {
  constructor(readonly errors: FieldError[]) {
    super(`invalid build spec: ${errors.map((e) => `${e.field}: ${e.message}`).join('; ')}`);
    this.name = 'BuildSpecError';
  }
}

/** Parses a spec from JSON text or an object; throws BuildSpecError with field-level errors. */
export function parseBuildSpec(input: unknown): BuildSpec {
  let raw = input;
  if (typeof input === 'string') {
    if (input.length > 64 * 1024) throw new BuildSpecError([{ field: 'spec', message: 'spec is larger than 64 KiB' }]);
    try {
      raw = JSON.parse(input);
    } catch (err) {
      throw new BuildSpecError([{ field: 'spec', message: `not valid JSON: ${(err as Error).message}` }]);
    }
  }
  const parsed = buildSpecSchema.safeParse(raw);
  if (!parsed.success) {
    throw new BuildSpecError(
      parsed.error.issues.map((i) => ({ field: i.path.length ? i.path.join('.') : 'spec', message: i.message })),
    );
  }
  return { ...parsed.data, targets: expandTargets(parsed.data.targets) };
}

/** Stable JSON: object keys sorted, so equal specs hash equally. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Inputs of a build outside the spec that change the plan's bytes (uploaded with the model). */
export interface PlanInputs {
  /** sha256 of the calibration archive (.npz): different samples, different INT8 ranges. */
  calibrationSha256?: string;
  /** sha256 of an uploaded calibration table (JSON). */
  calibrationTableSha256?: string;
}

/**
 * Hash of what changes a plan's bytes for one target: everything but the target
 * list, the model name, labels and verification settings (those do not change the
 * compiled plan; nor does the priority), plus the calibration data uploaded with the build, when any.
 */
export function planSpecHash(spec: BuildSpec, inputs: PlanInputs = {}): string {
  const { targets: _t, model: _m, labels: _l, verification: _v, priority: _p, ...planAffecting } = spec;
  const uploaded = Object.fromEntries(Object.entries(inputs).filter(([, v]) => v !== undefined));
  const hashed = Object.keys(uploaded).length ? { ...planAffecting, uploaded } : planAffecting;
  return createHash('sha256').update(canonicalJson(hashed)).digest('hex');
}
