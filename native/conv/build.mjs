// Builds the optional native convolution kernels (casl_conv.node) with
// node-gyp, offline: Node's own headers (<prefix>/include/node, shipped with
// Node and Debian's nodejs-dev) when present, else node-gyp's header cache.
// A failed build is not an error: casl then runs the wasm kernels, and says
// so in its startup log. Writes cpu.txt beside the addon: it is compiled for
// this CPU (-march=native), and src/model/backend/native.ts loads it only on
// the same CPU model.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.join(here, 'build', 'Release');
const args = ['rebuild'];
const prefix = path.resolve(path.dirname(process.execPath), '..');
for (const dir of [prefix, '/usr']) {
  if (existsSync(path.join(dir, 'include', 'node', 'node_api.h'))) {
    args.push(`--nodedir=${dir}`);
    break;
  }
}
/** node-gyp from node_modules (tap brings it), else the copy bundled with npm. */
function nodeGyp() {
  try {
    return createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
  } catch {
    const npmCli = execFileSync('npm', ['root', '-g'], { encoding: 'utf8' }).trim();
    return path.join(npmCli, 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  }
}

try {
  const gyp = nodeGyp();
  execFileSync(process.execPath, [gyp, ...args], { cwd: here, stdio: ['ignore', 'ignore', 'pipe'] });
  writeFileSync(path.join(out, 'cpu.txt'), os.cpus()[0]?.model ?? 'unknown');
  console.error(`casl: native convolution kernels built (${path.join(out, 'casl_conv.node')})`);
} catch (e) {
  const why = (e.stderr?.toString() ?? e.message).split('\n').filter((l) => /error/i.test(l)).slice(0, 3).join(' | ') || e.message;
  console.error(`casl: native convolution kernels not built, the wasm kernels will be used (${why})`);
}
mkdirSync(path.join(here, 'build'), { recursive: true });
writeFileSync(path.join(here, 'build', '.attempted'), new Date().toISOString() + '\n');
