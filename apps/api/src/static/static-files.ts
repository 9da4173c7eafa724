import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
};

/**
 * A folder of static files shipped with the sources (apps/api/src/<dir>/static):
 * found from the compiled module in dist/ (the repository layout) or beside it
 * (an image that copies static/ next to the compiled files). Only plain names,
 * no paths: nothing outside the folder can be asked for.
 */
export class StaticFiles {
  readonly root: string;

  constructor(moduleUrl: string, sourceDir: string) {
    const here = path.dirname(fileURLToPath(moduleUrl));
    const candidates = [path.join(here, 'static'), path.resolve(here, '..', '..', '..', '..', '..', 'apps', 'api', 'src', sourceDir, 'static')];
    this.root = candidates.find((c) => existsSync(c)) ?? candidates[candidates.length - 1];
  }

  /** null when there is no such file (or the name is not a plain file name). */
  async read(name: string): Promise<{ body: Buffer; contentType: string } | null> {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$/.test(name) || name.includes('..')) return null;
    try {
      const body = await readFile(path.join(this.root, name));
      return { body, contentType: CONTENT_TYPES[path.extname(name)] ?? 'application/octet-stream' };
    } catch {
      return null;
    }
  }
}
