import type { ApiClient } from '../api-client.js';
import type { Flags } from '../args.js';

export interface CommandContext {
  client: ApiClient;
  flags: Flags;
  positionals: string[];
  json: boolean;
  out: NodeJS.WriteStream;
  err: NodeJS.WriteStream;
}

export type Command = (ctx: CommandContext) => Promise<number>;

export function printJson(ctx: CommandContext, value: unknown): void {
  ctx.out.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Fixed-width columns for human output. */
export function table(rows: (string | number | null | undefined)[][]): string {
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined ? '-' : String(c))));
  const widths = cells[0]?.map((_, i) => Math.max(...cells.map((r) => r[i]?.length ?? 0))) ?? [];
  return `${cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n')}\n`;
}
