import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CliError, EXIT } from './cli-error.js';
import type { Flags } from './args.js';

export interface CliConfig {
  url: string;
  apiKey?: string;
  /** Where the values came from, for error messages. */
  source: string;
}

/** ~/.config/planforge/config.json (XDG_CONFIG_HOME respected), or PLANFORGE_CONFIG. */
export function configFilePath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PLANFORGE_CONFIG) return env.PLANFORGE_CONFIG;
  const base = env.XDG_CONFIG_HOME || path.join(env.HOME || os.homedir(), '.config');
  return path.join(base, 'planforge', 'config.json');
}

/** Flags win over the environment (PLANFORGE_URL, PLANFORGE_API_KEY), which wins over the config file ({url, apiKey}). */
export function resolveConfig(flags: Flags, env: NodeJS.ProcessEnv = process.env): CliConfig {
  const file = configFilePath(env);
  let fromFile: { url?: unknown; apiKey?: unknown } = {};
  try {
    fromFile = JSON.parse(readFileSync(file, 'utf8')) as typeof fromFile;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new CliError(EXIT.usage, `config file ${file} is not valid JSON: ${(err as Error).message}`);
  }
  const url = flags.string('url') ?? env.PLANFORGE_URL ?? (typeof fromFile.url === 'string' ? fromFile.url : undefined);
  const apiKey = flags.string('api-key') ?? env.PLANFORGE_API_KEY ?? (typeof fromFile.apiKey === 'string' ? fromFile.apiKey : undefined);
  if (!url) throw CliError.usage(`no API URL: pass --url, set PLANFORGE_URL, or put {"url": …} in ${file}`);
  try {
    const parsed = new URL(url);
    if (!['http:', 'https:'].includes(parsed.protocol)) throw new Error('not http(s)');
  } catch {
    throw CliError.usage(`API URL "${url}" is not an http(s) URL`);
  }
  const source = flags.string('url') ? '--url' : env.PLANFORGE_URL ? 'PLANFORGE_URL' : file;
  return { url: url.replace(/\/+$/, ''), apiKey, source };
}
