import os from 'node:os';
import { Readable } from 'node:stream';
import type { Job } from 'bullmq';
import { buildLogKey, type Target, type TargetJobData } from '../../../../libs/contracts/index.js';
import type { ObjectStorage } from '../../../../libs/storage/index.js';
import type { JobHandler } from '../job-router.js';
import type { Logger } from '../worker-logger.js';

/** A log larger than this keeps its head and its latest lines. */
const MAX_LOG_BYTES = 2 * 1024 * 1024;
/** While a job runs its log is stored this often (when it grew), so a long build's log can be read live. */
const FLUSH_MS = 5_000;
const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;

class JobLog {
  private text = '';
  private dirty = false;
  private flushing: Promise<void> = Promise.resolve();
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly storage: ObjectStorage,
    readonly key: string,
    private readonly log: Logger,
  ) {}

  /** Earlier attempts' lines (another worker may have run them) come first. */
  async open(header: string): Promise<void> {
    try {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of await this.storage.getObjectStream(this.key)) {
        chunks.push(chunk as Buffer);
        size += (chunk as Buffer).length;
        if (size > MAX_LOG_BYTES) break;
      }
      this.text = Buffer.concat(chunks).toString('utf8');
    } catch {
      this.text = ''; // first attempt (no log yet) or S3 trouble: start afresh
    }
    this.append(header);
    this.timer = setInterval(() => void this.flush(), FLUSH_MS);
    this.timer.unref();
  }

  append(line: string): void {
    this.text += line.endsWith('\n') ? line : `${line}\n`;
    if (this.text.length > MAX_LOG_BYTES) {
      const head = this.text.slice(0, 64 * 1024);
      this.text = `${head}\n[… log truncated …]\n${this.text.slice(-(MAX_LOG_BYTES - 128 * 1024))}`;
    }
    this.dirty = true;
  }

  flush(): Promise<void> {
    if (!this.dirty) return this.flushing;
    this.dirty = false;
    const body = Buffer.from(this.text, 'utf8');
    this.flushing = this.flushing
      .then(() => this.storage.uploadStream(this.key, Readable.from([body]), { contentType: 'text/plain; charset=utf-8' }))
      .then(
        () => undefined,
        (err: unknown) => this.log.warn({ err: (err as Error).message, key: this.key }, 'could not store the build log'),
      );
    return this.flushing;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}

/**
 * Per-target build logs: every line a job's logger writes (the processor logs
 * through a child logger bound to buildId and target) is also kept for that job
 * and stored in S3 at logs/<buildId>/<target>.log, appended to by each attempt.
 */
export class JobLogCapture {
  private readonly open = new Map<string, JobLog>();

  constructor(
    private readonly storage: ObjectStorage,
    private readonly workerId: string,
    private readonly log: Logger,
  ) {}

  /** A logger that also feeds the job logs; pass it to the job processors. */
  logger(base: Logger): Logger {
    return this.wrapLogger(base, {});
  }

  /** Runs a target job with its log open; the log is stored before the job ends. */
  wrap(handler: JobHandler): JobHandler {
    return async (job: Job, token?: string, signal?: AbortSignal) => {
      const data = job.data as TargetJobData | undefined;
      const buildId = data?.buildId;
      const target = data?.target;
      if (typeof buildId !== 'string' || typeof target !== 'string' || !/^[0-9a-f-]{36}$/i.test(buildId)) return handler(job, token, signal);
      const id = `${buildId}/${target}`;
      const jobLog = new JobLog(this.storage, buildLogKey(buildId, target as Target), this.log);
      const submitted = data?.requestId ? `, submitted by request ${data.requestId}` : '';
      await jobLog.open(`=== attempt ${job.attemptsMade + 1} of job ${job.id} on worker ${this.workerId} (${os.hostname()}) at ${new Date().toISOString()}${submitted} ===`);
      this.open.set(id, jobLog);
      try {
        const result = await handler(job, token, signal);
        jobLog.append(`${new Date().toISOString()} result: succeeded`);
        return result;
      } catch (err) {
        jobLog.append(`${new Date().toISOString()} result: failed: ${(err as Error)?.message ?? String(err)}`);
        throw err;
      } finally {
        this.open.delete(id);
        await jobLog.close();
      }
    };
  }

  /** A line for a job's log outside the logger (e.g. stage changes). */
  note(buildId: string, target: string, line: string): void {
    this.open.get(`${buildId}/${target}`)?.append(`${new Date().toISOString()} ${line}`);
  }

  private record(bindings: Record<string, unknown>, level: string, args: unknown[]): void {
    const buildId = bindings.buildId;
    const target = bindings.target;
    if (typeof buildId !== 'string' || typeof target !== 'string') return;
    const jobLog = this.open.get(`${buildId}/${target}`);
    if (!jobLog) return;
    let fields: Record<string, unknown> = {};
    let message = '';
    const [first, second] = args;
    if (typeof first === 'string') message = first;
    else {
      if (first instanceof Error) fields = { err: first.message };
      else if (first && typeof first === 'object') fields = { ...(first as Record<string, unknown>) };
      if (typeof second === 'string') message = second;
    }
    if (fields.err instanceof Error) fields.err = fields.err.message;
    // What the attempt header already says is left out of each line.
    const { buildId: _b, target: _t, jobId: _j, attempt: _a, requestId: _r, ...rest } = { ...bindings, ...fields };
    const extra = Object.keys(rest).length ? ` ${safeJson(rest)}` : '';
    jobLog.append(`${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} ${message}${extra}`);
  }

  private wrapLogger(base: Logger, bindings: Record<string, unknown>): Logger {
    return new Proxy(base, {
      get: (target, prop) => {
        if (prop === 'child') {
          return (childBindings: Record<string, unknown>, options?: unknown) =>
            this.wrapLogger((target.child as unknown as (b: unknown, o?: unknown) => Logger).call(target, childBindings, options), { ...bindings, ...childBindings });
        }
        if (typeof prop === 'string' && (LEVELS as readonly string[]).includes(prop)) {
          const method = Reflect.get(target, prop) as (...args: unknown[]) => void;
          return (...args: unknown[]) => {
            if (prop !== 'trace' && prop !== 'debug') this.record(bindings, prop, args);
            return method.apply(target, args);
          };
        }
        return Reflect.get(target, prop);
      },
    });
  }
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v instanceof Error ? v.message : v));
  } catch {
    return '[unserializable]';
  }
}
