import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CliError, EXIT } from '../cli-error.js';
import { printJson, table, type CommandContext } from './command-context.js';

function arg(ctx: CommandContext, index: number, usage: string): string {
  const v = ctx.positionals[index];
  if (!v) throw CliError.usage(`usage: ${usage}`);
  return v;
}

const enc = encodeURIComponent;

export async function models(ctx: CommandContext): Promise<number> {
  const result = await ctx.client.json('/v1/models');
  if (ctx.json) printJson(ctx, result);
  else ctx.out.write(table([['MODEL', 'LATEST', 'VERSIONS', 'CREATED'], ...result.models.map((m: any) => [m.name, m.latestVersion, m.versionCount, m.createdAt])]));
  return EXIT.ok;
}

export async function versions(ctx: CommandContext): Promise<number> {
  const model = ctx.flags.string('model') ?? arg(ctx, 0, 'planforge versions MODEL');
  const result = await ctx.client.json(`/v1/models/${enc(model)}/versions`);
  if (ctx.json) printJson(ctx, result);
  else
    ctx.out.write(
      table([
        ['VERSION', 'STATUS', 'TARGETS', 'PRECISION', 'SHA256', 'CREATED'],
        ...result.versions.map((v: any) => [v.version, v.status, v.targets.join(','), v.spec?.precision, String(v.sha256).slice(0, 12), v.createdAt]),
      ]),
    );
  return EXIT.ok;
}

/** planforge promote MODEL VERSION --channel stable [--target sm_90] [--reason …] [--force] [--canary PCT] */
export async function promote(ctx: CommandContext): Promise<number> {
  const usage = 'planforge promote MODEL VERSION --channel NAME [--target sm_90] [--reason TEXT] [--force] [--canary PCT]';
  const model = arg(ctx, 0, usage);
  const version = Number(arg(ctx, 1, usage));
  if (!Number.isInteger(version) || version < 1) throw CliError.usage(`VERSION must be a positive integer: ${usage}`);
  const channel = ctx.flags.required('channel', 'e.g. --channel stable');
  const body: Record<string, unknown> = { version };
  const target = ctx.flags.string('target');
  if (target) body.target = target;
  const reason = ctx.flags.string('reason');
  if (reason) body.reason = reason;
  if (ctx.flags.bool('force')) body.force = true;
  const canary = ctx.flags.string('canary');
  if (canary !== undefined) {
    // The server checks the range (0.01-99.99); here only that it is a number at all.
    const percent = Number(canary.replace(/%$/, ''));
    if (canary.trim() === '' || !Number.isFinite(percent)) throw CliError.usage(`--canary takes a percentage of devices, e.g. --canary 5 (got "${canary}")`);
    body.canary = { percent };
  }
  const result = await ctx.client.postJson(`/v1/models/${enc(model)}/channels/${enc(channel)}/promote`, body);
  if (ctx.json) printJson(ctx, result);
  else printChange(ctx, result);
  return EXIT.ok;
}

/** planforge rollback MODEL --channel stable --reason "…" [--to VERSION] [--target sm_90] */
export async function rollback(ctx: CommandContext): Promise<number> {
  const model = ctx.flags.string('model') ?? arg(ctx, 0, 'planforge rollback MODEL --channel NAME --reason TEXT [--to VERSION] [--target sm_90]');
  const channel = ctx.flags.required('channel', 'e.g. --channel stable');
  const reason = ctx.flags.required('reason', 'say why, it goes into the channel history');
  const body: Record<string, unknown> = { reason };
  const to = ctx.flags.int('to');
  if (to !== undefined) body.toVersion = to;
  const target = ctx.flags.string('target');
  if (target) body.target = target;
  const result = await ctx.client.postJson(`/v1/models/${enc(model)}/channels/${enc(channel)}/rollback`, body);
  if (ctx.json) printJson(ctx, result);
  else printChange(ctx, result);
  return EXIT.ok;
}

function printChange(ctx: CommandContext, result: any): void {
  ctx.out.write(`${result.model}/${result.channel}: ${result.action}${result.forced ? ' (forced)' : ''}\n`);
  for (const c of result.changes ?? []) ctx.out.write(`  ${c.target}: v${c.from ?? '-'} -> v${c.to}\n`);
  if (result.unchanged?.length) ctx.out.write(`  unchanged: ${result.unchanged.join(', ')}\n`);
}

/** planforge rollout status MODEL CHANNEL: the channel's latest rollout, its checks against the policy and the decision. */
export async function rollout(ctx: CommandContext): Promise<number> {
  const usage = 'planforge rollout status MODEL CHANNEL';
  const [sub] = ctx.positionals;
  if (sub !== 'status') throw CliError.usage(sub ? `rollout: unknown subcommand "${sub}" (status)` : `usage: ${usage}`);
  const model = arg(ctx, 1, usage);
  const channel = arg(ctx, 2, usage);
  const result = await ctx.client.json(`/v1/models/${enc(model)}/channels/${enc(channel)}/rollout`);
  if (ctx.json) printJson(ctx, result);
  else printRollout(ctx, result);
  return EXIT.ok;
}

const asPercent = (fraction: number, signed = false): string => `${signed && fraction > 0 ? '+' : ''}${Number((fraction * 100).toFixed(2))}%`;

function printRollout(ctx: CommandContext, result: any): void {
  const r = result.rollout;
  if (!r) {
    ctx.out.write(`${result.model}/${result.channel}: no rollout\n`);
    return;
  }
  const from = Object.entries(r.fromVersions ?? {}).map(([t, v]) => `${t} v${v}`).join(', ');
  ctx.out.write(`${result.model}/${result.channel}: rollout of v${r.version}${from ? ` (from ${from})` : ''}\n`);
  ctx.out.write(`  state:            ${r.state}\n`);
  ctx.out.write(`  canary:           ${r.canary ? `${r.canary.percent}% of devices` : 'none (every device)'}\n`);
  ctx.out.write(`  window remaining: ${r.state === 'watching' ? `${r.windowRemainingSeconds} s` : '-'}\n`);
  ctx.out.write(`  started:          ${r.startedAt} by ${r.createdBy}\n`);
  // While watching: the live evaluation {scopes, decision}; once decided: {action, scopes} and the reason on the rollout.
  const evaluation = r.evaluation ?? {};
  for (const s of evaluation.scopes ?? []) {
    const c = s.candidate ?? {};
    const b = s.baseline ?? {};
    ctx.out.write(`  scope ${s.scope}: candidate v${c.version ?? '-'} ${c.requests ?? 0} requests, baseline v${b.version ?? '-'} ${b.requests ?? 0} requests${s.judged ? '' : ' (not judged yet)'}\n`);
    const rows = (s.checks ?? []).map((k: any) => [
      `    ${k.name}`,
      k.value === null || k.value === undefined ? '-' : asPercent(k.value, k.name !== 'error_rate'),
      `limit ${asPercent(k.limit, k.name !== 'error_rate')}`,
      k.status,
      k.detail,
    ]);
    if (rows.length) ctx.out.write(table([['    CHECK', 'VALUE', 'LIMIT', 'STATUS', 'DETAIL'], ...rows]));
  }
  const action = evaluation.decision?.action ?? evaluation.action;
  const reason = evaluation.decision?.reason ?? r.reason;
  ctx.out.write(`  decision:         ${[action, reason].filter(Boolean).join(': ') || '-'}\n`);
  if (r.decidedAt) ctx.out.write(`  decided:          ${r.decidedAt}\n`);
}

/** planforge pull --model M --channel C --sm 86 -o FILE: downloads the channel's plan and checks its sha256. */
export async function pull(ctx: CommandContext): Promise<number> {
  const model = ctx.flags.required('model');
  const channel = ctx.flags.required('channel');
  const sm = ctx.flags.required('sm', 'e.g. --sm 86 or --sm sm_86');
  const output = ctx.flags.required('output', '-o FILE');
  const q = new URLSearchParams({ model, channel, sm });
  const runtime = ctx.flags.string('runtime');
  if (runtime) q.set('runtime', runtime);
  const plan = await ctx.client.json(`/v1/resolve?${q}`);
  let res: Response;
  try {
    res = await fetch(plan.url);
  } catch (err) {
    throw new CliError(EXIT.server, `cannot download the plan: ${(err as Error).message}`);
  }
  if (!res.ok || !res.body) throw new CliError(EXIT.server, `downloading the plan failed: HTTP ${res.status}`);
  const hash = createHash('sha256');
  let size = 0;
  const partial = `${output}.partial-${process.pid}`;
  try {
    await pipeline(
      Readable.fromWeb(res.body as import('node:stream/web').ReadableStream),
      new Transform({
        transform(chunk: Buffer, _enc, done) {
          hash.update(chunk);
          size += chunk.length;
          done(null, chunk);
        },
      }),
      createWriteStream(partial),
    );
    const sha256 = hash.digest('hex');
    if (sha256 !== plan.sha256) throw new CliError(EXIT.server, `sha256 mismatch: expected ${plan.sha256}, downloaded ${sha256} (${size} bytes); nothing written`);
    // Only a verified plan takes the output's name.
    await rename(partial, output);
  } finally {
    await rm(partial, { force: true });
  }
  if (ctx.json) printJson(ctx, { ...plan, url: undefined, output, verified: true });
  else ctx.out.write(`${output}: ${model} v${plan.version} ${plan.target} (${plan.precision}, ${size} bytes, sha256 ${plan.sha256} verified)\n`);
  return EXIT.ok;
}

/** planforge keys [list] | keys create NAME --role viewer|submitter|admin | keys revoke ID */
export async function keys(ctx: CommandContext): Promise<number> {
  const [sub = 'list', name] = ctx.positionals;
  if (sub === 'list') {
    const result = await ctx.client.json('/v1/admin/keys');
    if (ctx.json) printJson(ctx, result);
    else ctx.out.write(table([['ID', 'NAME', 'ROLE', 'PREFIX', 'STATUS', 'CREATED'], ...result.keys.map((k: any) => [k.id, k.name, k.role, k.keyPrefix, k.status, k.createdAt])]));
    return EXIT.ok;
  }
  if (sub === 'create') {
    if (!name) throw CliError.usage('usage: planforge keys create NAME --role viewer|submitter|admin');
    const result = await ctx.client.postJson('/v1/admin/keys', { name, role: ctx.flags.required('role', 'viewer, submitter or admin') });
    if (ctx.json) printJson(ctx, result);
    else ctx.out.write(`created key ${result.id} (${result.role}); the secret is shown once:\n${result.key}\n`);
    return EXIT.ok;
  }
  if (sub === 'revoke') {
    if (!name) throw CliError.usage('usage: planforge keys revoke KEY_ID');
    const result = await ctx.client.json(`/v1/admin/keys/${enc(name)}`, { method: 'DELETE' });
    if (ctx.json) printJson(ctx, result);
    else ctx.out.write(`revoked key ${name}\n`);
    return EXIT.ok;
  }
  throw CliError.usage(`keys: unknown subcommand "${sub}" (list, create, revoke)`);
}

export async function workers(ctx: CommandContext): Promise<number> {
  const result = await ctx.client.json('/v1/workers');
  if (ctx.json) printJson(ctx, result);
  else
    ctx.out.write(
      table([
        ['WORKER', 'STATE', 'HOST', 'POOL', 'GPU', 'SM', 'DRIVER', 'OPTIMIZER', 'JOBS', 'LAST SEEN'],
        ...result.workers.map((w: any) => [w.workerId, w.state, w.host, w.targets.join(','), w.gpu, w.sm, w.driver, w.optimizerVersion, w.currentJobs.length, `${w.lastSeenSecondsAgo}s ago`]),
      ]),
    );
  return EXIT.ok;
}

export async function pools(ctx: CommandContext): Promise<number> {
  const result = await ctx.client.json('/v1/pools');
  if (ctx.json) printJson(ctx, result);
  else
    ctx.out.write(
      table([
        ['TARGET', 'ALIVE', 'BUSY', 'LOST', 'WAITING', 'ACTIVE', 'OLDEST WAIT'],
        ...result.pools.map((p: any) => [p.target, p.workers.alive, p.workers.busy, p.workers.lost, p.queue.waiting, p.queue.active, p.queue.oldestWaitingSeconds === null ? null : `${Math.round(p.queue.oldestWaitingSeconds)}s`]),
      ]),
    );
  return EXIT.ok;
}
