#!/usr/bin/env node
// The `casl` command: runs the compiled CLI (`make build` or `npm run build` makes dist/).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
const main = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  process.stderr.write('casl: dist/ is missing; run `make build` (or `npm run build`) in the casl checkout first\n');
  process.exit(2);
}
const { run } = await import(main.href);
process.exitCode = await run(process.argv.slice(2));
