import { stat } from 'node:fs/promises';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { CliError, EXIT } from '../cli-error.js';
import { uploadMultipart } from '../multipart-upload.js';
import { ProgressView } from '../progress-view.js';
import { readEvents } from '../sse-client.js';
import { printJson, table, type CommandContext } from './command-context.js';

const TERMINAL = ['succeeded', 'partial', 'failed', 'cancelled'];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function buildIdArg(ctx: CommandContext): string {
  const id = ctx.positionals[0];
  if (!id) throw CliError.usage('a build id is required');
  if (!UUID.test(id)) throw CliError.usage(`"${id}" is not a build id (a UUID)`);
  return id;
}

/** "1x3x224x224" → [1, 3, 224, 224] */
function dims(text: string, what: string): number[] {
  if (!/^\d+(x\d+)*$/.test(text)) throw CliError.usage(`${what}: expected dimensions like 1x3x224x224, got "${text}"`);
  return text.split('x').map(Number);
}

/** --profile input=MIN/OPT/MAX, e.g. input=1x3x224x224/8x3x224x224/16x3x224x224 (repeatable). */
function parseProfiles(raw: string | undefined): Record<string, { min: number[]; opt: number[]; max: number[] }> {
  const profiles: Record<string, { min: number[]; opt: number[]; max: number[] }> = {};
  if (!raw) return profiles;
  for (const item of raw.split(',')) {
    const m = /^([^=]+)=([^/]+)\/([^/]+)\/([^/]+)$/.exec(item.trim());
    if (!m) throw CliError.usage(`--profile "${item}": expected NAME=MIN/OPT/MAX, e.g. input=1x3x224x224/8x3x224x224/16x3x224x224`);
    profiles[m[1]] = { min: dims(m[2], `--profile ${m[1]} min`), opt: dims(m[3], `--profile ${m[1]} opt`), max: dims(m[4], `--profile ${m[1]} max`) };
  }
  return profiles;
}

/** The model's name: --model, else the file name (lowercased, made safe). */
function modelName(file: string, given: string | undefined): string {
  const name = (given ?? path.basename(file).replace(/\.onnx$/i, '')).toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[^a-z0-9]+/, '');
  if (!/^[a-z0-9][a-z0-9._-]{0,127}$/.test(name)) throw CliError.usage(`cannot make a model name from "${given ?? file}": pass --model NAME`);
  return name;
}

export async function submit(ctx: CommandContext): Promise<number> {
  const file = ctx.positionals[0];
  if (!file) throw CliError.usage('usage: planforge submit MODEL.onnx --targets hopper,ampere [--precision fp16] [--wait]');
  const info = await stat(file).catch(() => null);
  if (!info?.isFile()) throw CliError.usage(`${file}: no such file`);
  const f = ctx.flags;
  let spec: Record<string, unknown> = {};
  const specFile = f.string('spec');
  if (specFile) {
    try {
      spec = JSON.parse(await readFile(specFile, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      throw CliError.usage(`--spec ${specFile}: ${(err as Error).message}`);
    }
  }
  const targets = f.string('targets');
  if (targets) spec.targets = targets.split(',').map((t) => t.trim()).filter(Boolean);
  if (!spec.targets) throw CliError.usage('--targets is required (e.g. --targets hopper,ampere or sm_90,sm_86)');
  spec.model = f.string('model') ?? spec.model ?? modelName(file, undefined);
  if (typeof spec.model === 'string') spec.model = modelName(file, spec.model);
  const precision = f.string('precision');
  if (precision) spec.precision = precision;
  const profiles = parseProfiles(f.string('profile'));
  if (Object.keys(profiles).length) spec.profiles = { ...(spec.profiles as object), ...profiles };
  const labels = f.string('label');
  if (labels) {
    spec.labels = { ...(spec.labels as object) };
    for (const kv of labels.split(',')) {
      const eq = kv.indexOf('=');
      if (eq < 1) throw CliError.usage(`--label "${kv}": expected KEY=VALUE`);
      (spec.labels as Record<string, string>)[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
  }
  const headers: Record<string, string> = ctx.client.headers();
  const priority = f.string('priority');
  if (priority) headers.priority = priority;
  const idempotency = f.string('idempotency-key');
  if (idempotency) headers['idempotency-key'] = idempotency;
  const res = await uploadMultipart(`${ctx.client.config.url}/v1/builds`, headers, [
    { name: 'spec', value: JSON.stringify(spec) },
    // Streamed from disk, never read into memory whole.
    { name: 'model', file: { path: file, size: info.size, filename: path.basename(file) } },
  ]);
  const submitted = ctx.client.check(res.status, res.body, res.headers['retry-after']);
  if (!f.bool('wait')) {
    if (ctx.json) printJson(ctx, submitted);
    else {
      ctx.out.write(`build ${submitted.buildId}: ${submitted.model} v${submitted.version} for ${submitted.targets.join(', ')} (${submitted.status})\n`);
      for (const w of submitted.warnings ?? []) ctx.err.write(`warning: ${w}\n`);
    }
    return EXIT.ok;
  }
  if (!ctx.json) ctx.err.write(`build ${submitted.buildId}: ${submitted.model} v${submitted.version}\n`);
  return follow(ctx, submitted.buildId, submitted);
}

/** Follows a build over SSE until it ends; 0 when it succeeded, 1 otherwise. */
async function follow(ctx: CommandContext, buildId: string, extra: Record<string, unknown> = {}): Promise<number> {
  const view = ctx.json ? null : new ProgressView(ctx.err);
  let final: any;
  for (;;) {
    try {
      for await (const message of readEvents(ctx.client, `/v1/builds/${buildId}/events`)) {
        if (message.event === 'snapshot') {
          final = message.data;
          for (const t of message.data.targets ?? []) {
            view?.update({ target: t.target, status: t.status, stage: t.stage, percent: t.progress, workerId: t.workerId, error: t.error?.code ?? null });
          }
        } else if (message.event === 'target') {
          const e = message.data;
          view?.update({ target: e.target, status: e.status, stage: e.stage, percent: e.percent, workerId: e.workerId, gpu: e.gpu, error: e.error?.code ?? null });
        }
      }
    } catch (err) {
      if (err instanceof CliError) throw err;
      // The stream broke (proxy, restart): pick up again from a fresh snapshot.
      ctx.err.write(`event stream interrupted (${(err as Error).message}); reconnecting\n`);
      await new Promise((r) => setTimeout(r, 1_000));
      continue;
    }
    if (final && TERMINAL.includes(final.status)) break;
    final = await ctx.client.json(`/v1/builds/${buildId}`);
    if (TERMINAL.includes(final.status)) break;
  }
  if (ctx.json) printJson(ctx, { ...extra, build: final });
  else ctx.out.write(`build ${buildId} ${final.status}\n`);
  return final.status === 'succeeded' ? EXIT.ok : EXIT.buildFailed;
}

export async function watch(ctx: CommandContext): Promise<number> {
  return follow(ctx, buildIdArg(ctx));
}

export async function status(ctx: CommandContext): Promise<number> {
  const build = await ctx.client.json(`/v1/builds/${buildIdArg(ctx)}`);
  if (ctx.json) printJson(ctx, build);
  else {
    ctx.out.write(`build ${build.buildId}: ${build.model} v${build.version} ${build.status}\n`);
    ctx.out.write(
      table([
        ['TARGET', 'STATUS', 'STAGE', 'PROGRESS', 'WORKER', 'ERROR'],
        ...build.targets.map((t: any) => [t.target, t.status, t.stage, `${Math.round(t.progress)}%`, t.workerId, t.error ? `${t.error.code}: ${t.error.message}` : null]),
      ]),
    );
  }
  return EXIT.ok;
}

export async function logs(ctx: CommandContext): Promise<number> {
  const id = buildIdArg(ctx);
  const target = ctx.positionals[1];
  if (!target) throw CliError.usage('usage: planforge logs BUILD_ID TARGET (e.g. sm_90)');
  const res = await ctx.client.fetch(`/v1/builds/${id}/logs/${encodeURIComponent(target)}`);
  ctx.out.write(await res.text());
  return EXIT.ok;
}

export async function cancel(ctx: CommandContext): Promise<number> {
  const id = buildIdArg(ctx);
  const reason = ctx.flags.string('reason');
  const result = await ctx.client.json(`/v1/builds/${id}`, { method: 'DELETE', headers: reason ? { 'x-cancel-reason': reason } : {} });
  if (ctx.json) printJson(ctx, result);
  else ctx.out.write(`build ${id} cancelled: ${result.cancelledTargets.join(', ') || 'no open targets'}${result.interruptedTargets.length ? ` (interrupted: ${result.interruptedTargets.join(', ')})` : ''}\n`);
  return EXIT.ok;
}

export async function builds(ctx: CommandContext): Promise<number> {
  const q = new URLSearchParams();
  for (const name of ['state', 'model', 'limit']) {
    const v = ctx.flags.string(name);
    if (v) q.set(name, v);
  }
  const result = await ctx.client.json(`/v1/builds${q.size ? `?${q}` : ''}`);
  if (ctx.json) printJson(ctx, result);
  else
    ctx.out.write(
      table([['BUILD', 'MODEL', 'VERSION', 'STATUS', 'TARGETS', 'CREATED'], ...result.builds.map((b: any) => [b.buildId, b.model, b.version, b.status, b.targets.join(','), b.createdAt])]),
    );
  return EXIT.ok;
}
