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
const code = await run(process.argv.slice(2));
// Exit explicitly: the wasm backend's worker threads would otherwise keep
// the process alive after the work is done. Every command has flushed its
// outputs by the time run() resolves.
process.exit(code);
