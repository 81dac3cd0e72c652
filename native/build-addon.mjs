// Builds one of casl's optional N-API addons (native/<name>/binding.gyp) with
// node-gyp, offline: Node's own headers (<prefix>/include/node, shipped with
// Node and Debian's nodejs-dev) when present, else node-gyp's header cache.
// Never throws: a failed build returns why, and casl runs without the addon.
// Leaves build/.attempted, the Makefile's stamp, whatever the outcome.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

/** node-gyp from node_modules (tap brings it), else the copy bundled with npm. */
function nodeGyp() {
  try {
    return createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
  } catch {
    const npmRoot = execFileSync('npm', ['root', '-g'], { encoding: 'utf8' }).trim();
    return path.join(npmRoot, 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  }
}

/** `node-gyp rebuild` in `dir`: { ok: true } or { ok: false, why } with the compiler's first errors. */
export function buildAddon(dir) {
  const args = ['rebuild'];
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  for (const d of [prefix, '/usr']) {
    if (existsSync(path.join(d, 'include', 'node', 'node_api.h'))) {
      args.push(`--nodedir=${d}`);
      break;
    }
  }
  let result;
  try {
    execFileSync(process.execPath, [nodeGyp(), ...args], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    result = { ok: true };
  } catch (e) {
    const why = (e.stderr?.toString() ?? e.message).split('\n').filter((l) => /error/i.test(l)).slice(0, 3).join(' | ') || e.message;
    result = { ok: false, why };
  }
  mkdirSync(path.join(dir, 'build'), { recursive: true });
  writeFileSync(path.join(dir, 'build', '.attempted'), `${new Date().toISOString()} ${result.ok ? 'built' : 'failed'}\n`);
  return result;
}
