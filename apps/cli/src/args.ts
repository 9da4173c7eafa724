import { CliError } from './cli-error.js';

export interface ParsedArgs {
  command: string | undefined;
  positionals: string[];
  flags: Map<string, string | true>;
}

/** Flags that take no value. */
const BOOLEAN_FLAGS = new Set(['json', 'wait', 'help', 'force', 'no-color', 'quiet']);
const SHORT: Record<string, string> = { o: 'output', h: 'help', t: 'targets', p: 'precision', q: 'quiet' };

/** `--name value`, `--name=value`, `-o value`, booleans, `--` ends the flags. Repeated flags keep every value, comma-joined. */
export function parseArgs(argv: string[]): ParsedArgs {
  const positionals: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    let name: string | undefined;
    let value: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      name = eq > 0 ? arg.slice(2, eq) : arg.slice(2);
      if (eq > 0) value = arg.slice(eq + 1);
    } else if (/^-[a-zA-Z]$/.test(arg)) {
      name = SHORT[arg[1]];
      if (!name) throw CliError.usage(`unknown option ${arg}`);
    } else {
      positionals.push(arg);
      continue;
    }
    if (!name) throw CliError.usage(`bad option ${arg}`);
    if (BOOLEAN_FLAGS.has(name)) {
      if (value !== undefined && !['true', 'false'].includes(value)) throw CliError.usage(`--${name} takes no value`);
      if (value !== 'false') flags.set(name, true);
      continue;
    }
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) throw CliError.usage(`--${name} needs a value`);
    }
    const previous = flags.get(name);
    flags.set(name, typeof previous === 'string' ? `${previous},${value}` : value);
  }
  const [command, ...rest] = positionals;
  return { command, positionals: rest, flags };
}

export class Flags {
  constructor(private readonly flags: Map<string, string | true>) {}

  string(name: string): string | undefined {
    const v = this.flags.get(name);
    if (v === true) throw CliError.usage(`--${name} needs a value`);
    return v;
  }

  required(name: string, hint = ''): string {
    const v = this.string(name);
    if (v === undefined || v === '') throw CliError.usage(`--${name} is required${hint ? ` (${hint})` : ''}`);
    return v;
  }

  bool(name: string): boolean {
    return this.flags.get(name) === true;
  }

  int(name: string, min = 1): number | undefined {
    const v = this.string(name);
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v) || Number(v) < min) throw CliError.usage(`--${name} must be an integer >= ${min}, got "${v}"`);
    return Number(v);
  }

  /** Flags nobody read: a typo is a usage error, not silently ignored. */
  unknown(known: string[]): string[] {
    return [...this.flags.keys()].filter((k) => !known.includes(k));
  }
}
