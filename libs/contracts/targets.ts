/**
 * GPU targets are CUDA compute capabilities. Family aliases expand to the SMs a
 * team deploys on, so a spec can say "ampere" instead of listing both SMs.
 */
export const TARGETS = ['sm_80', 'sm_86', 'sm_87', 'sm_90'] as const;
export type Target = (typeof TARGETS)[number];

export const TARGET_ALIASES: Readonly<Record<string, readonly Target[]>> = {
  ampere: ['sm_80', 'sm_86'],
  jetson: ['sm_87'],
  hopper: ['sm_90'],
};

export const TARGET_INFO: Readonly<Record<Target, { sm: number; family: string; hostArch: 'x64' | 'arm64' }>> = {
  sm_80: { sm: 80, family: 'ampere', hostArch: 'x64' },
  sm_86: { sm: 86, family: 'ampere', hostArch: 'x64' },
  sm_87: { sm: 87, family: 'jetson', hostArch: 'arm64' },
  sm_90: { sm: 90, family: 'hopper', hostArch: 'x64' },
};

export function isTarget(value: string): value is Target {
  return (TARGETS as readonly string[]).includes(value);
}

/** Expands aliases, removes duplicates, keeps a stable order (TARGETS order). Throws on an unknown name. */
export function expandTargets(names: readonly string[]): Target[] {
  const wanted = new Set<Target>();
  for (const raw of names) {
    const name = raw.trim().toLowerCase();
    if (isTarget(name)) wanted.add(name);
    else if (name in TARGET_ALIASES) TARGET_ALIASES[name].forEach((t) => wanted.add(t));
    else throw new UnknownTargetError(raw);
  }
  return TARGETS.filter((t) => wanted.has(t));
}

export class UnknownTargetError extends Error {
  constructor(readonly target: string) {
    super(`unknown target "${target}": expected one of ${[...TARGETS, ...Object.keys(TARGET_ALIASES)].join(', ')}`);
    this.name = 'UnknownTargetError';
  }
}

/** SM number of a target, e.g. 90 for sm_90. */
export function smOf(target: Target): number {
  return TARGET_INFO[target].sm;
}
