import type { Target } from './targets.js';

/**
 * What the API and the workers tell each other outside BullMQ: live build events
 * (Redis pub/sub), cancellation requests, worker heartbeats and shared metrics.
 * Every Redis name is under the farm's BullMQ prefix and queue prefix, so test
 * farms with random prefixes never hear each other.
 */

/** Build priorities: BullMQ runs lower numbers first; release builds jump the branch builds. */
export const PRIORITY_LEVELS = { release: 1, branch: 100 } as const;
export type PriorityLevel = keyof typeof PRIORITY_LEVELS;
/** BullMQ's largest priority (2^21 - 1). */
export const MAX_JOB_PRIORITY = 2_097_151;
/** A build that names no priority is a branch build. */
export const DEFAULT_PRIORITY: PriorityLevel = 'branch';

/**
 * "release" | "branch" | a number 1..2097151 (lower runs first) → BullMQ job priority.
 * Throws a TypeError naming the accepted values on anything else.
 */
export function jobPriority(value: string | number | undefined | null): number {
  if (value === undefined || value === null || value === '') return PRIORITY_LEVELS[DEFAULT_PRIORITY];
  if (typeof value === 'string') {
    const name = value.trim().toLowerCase();
    if (name in PRIORITY_LEVELS) return PRIORITY_LEVELS[name as PriorityLevel];
    if (!/^\d+$/.test(name)) throw new TypeError(`priority must be release, branch or an integer 1-${MAX_JOB_PRIORITY}, got "${value.slice(0, 40)}"`);
    value = Number(name);
  }
  if (!Number.isInteger(value) || value < 1 || value > MAX_JOB_PRIORITY) {
    throw new TypeError(`priority must be release, branch or an integer 1-${MAX_JOB_PRIORITY}, got ${String(value)}`);
  }
  return value;
}

export interface FarmNames {
  bullPrefix: string;
  queuePrefix: string;
}

function base(farm: FarmNames): string {
  return `${farm.bullPrefix}:${farm.queuePrefix}:ops`;
}

/** Pub/sub channel of one build's live events. */
export function buildEventsChannel(farm: FarmNames, buildId: string): string {
  return `${base(farm)}:events:${buildId}`;
}

/** Pub/sub channel every worker listens on for cancellations: the message is a build id. */
export function cancelChannel(farm: FarmNames): string {
  return `${base(farm)}:cancel`;
}

/** Set while a build is cancelled (a worker that missed the message finds it here). */
export function cancelledKey(farm: FarmNames, buildId: string): string {
  return `${base(farm)}:cancelled:${buildId}`;
}

/** Hash per worker process (WorkerInfo fields), refreshed by its heartbeat. */
export function workerKey(farm: FarmNames, workerId: string): string {
  return `${base(farm)}:worker:${workerId}`;
}

/** Sorted set of worker ids scored by their last heartbeat (ms): lets readers find lost workers. */
export function workersIndexKey(farm: FarmNames): string {
  return `${base(farm)}:workers`;
}

/** Hash of counters the workers add to (histogram buckets, failure counts), rendered by the API's /metrics. */
export function sharedMetricsKey(farm: FarmNames): string {
  return `${base(farm)}:metrics`;
}

/** Token bucket of one API key's submissions. */
export function rateLimitKey(farm: FarmNames, scope: string): string {
  return `${base(farm)}:ratelimit:${scope}`;
}

/** Per-target build logs in S3, written by the worker that ran the target. */
export function buildLogKey(buildId: string, target: Target): string {
  return `logs/${buildId}/${target}.log`;
}

/** A worker is `lost` when its last heartbeat is older than this. */
export const WORKER_LOST_AFTER_MS = 15_000;
export const WORKER_HEARTBEAT_MS = 5_000;

/** Upper bounds (seconds) of the build duration histograms. */
export const DURATION_BUCKETS_S = [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600] as const;

export type TargetEventKind = 'queued' | 'started' | 'progress' | 'retrying' | 'succeeded' | 'failed' | 'cancelled';

/** One target's state as carried by an event: each event says all there is, so events are idempotent. */
export interface TargetEvent {
  type: 'target';
  kind: TargetEventKind;
  buildId: string;
  target: Target;
  /** queued | running | succeeded | failed | cancelled */
  status: string;
  stage: string | null;
  percent: number;
  attempt?: number;
  workerId?: string | null;
  /** The GPU the worker runs on, or "cross" for a cross-compiling worker. */
  gpu?: string | null;
  error?: { code: string | null; message: string | null } | null;
  at: string;
}

/** The build as a whole reached a state (terminal ones end the event stream). */
export interface BuildStateEvent {
  type: 'build';
  buildId: string;
  status: string;
  at: string;
}

export type BuildEvent = TargetEvent | BuildStateEvent;

export const TERMINAL_BUILD_STATUSES: readonly string[] = ['succeeded', 'partial', 'failed', 'cancelled'];

/** What a worker says about itself in its heartbeat hash. */
export interface WorkerInfo {
  workerId: string;
  host: string;
  pid: number;
  /** The pool: targets served, e.g. "sm_80,sm_86". */
  targets: Target[];
  mode: 'cross' | 'gpu';
  gpu: { name: string; sm: string | null; memoryMiB: number | null; driver: string | null } | null;
  optimizerVersion: string;
  /** Jobs running now: "<buildId>/<target>". */
  currentJobs: string[];
  startedAt: string;
  lastSeen: string;
  /** running, or stopped after a clean shutdown. */
  state: 'running' | 'stopped';
}
