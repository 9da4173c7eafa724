import { readdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';

/**
 * Deletes plain files in `dir` not modified for `olderThanMs`: leftovers of a
 * process that crashed mid-build. Age-based because sibling worker processes
 * of the same host may share the directory and be writing to it right now.
 */
export async function removeStaleFiles(dir: string, olderThanMs: number): Promise<number> {
  const now = Date.now();
  let removed = 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const file = path.join(dir, name);
    const st = await stat(file).catch(() => null);
    if (st?.isFile() && now - st.mtimeMs > olderThanMs && (await unlink(file).then(() => true, () => false))) removed++;
  }
  return removed;
}
