#!/usr/bin/env node
// The planforge CLI: compiled from apps/cli (npm run build:ts).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/apps/cli/src/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  process.stderr.write('planforge: the CLI is not built yet: run `npm run build:ts` in the planforge checkout\n');
  process.exit(3);
}
const { run } = await import(main.href);
const code = await run(process.argv.slice(2));
// Let stdout drain before exiting (piped output in CI).
process.stdout.write('', () => process.exit(code));
