// Builds the optional native convolution kernels (casl_conv.node) with
// node-gyp (native/build-addon.mjs: offline, never fails the caller). A failed
// build is not an error: casl then runs the wasm kernels, and says so in its
// startup log. Writes cpu.txt beside the addon: it is compiled for this CPU
// (-march=native), and src/model/backend/native.ts loads it only on the same
// CPU model.
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildAddon } from '../build-addon.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.join(here, 'build', 'Release');
const res = buildAddon(here);
if (res.ok) {
  writeFileSync(path.join(out, 'cpu.txt'), os.cpus()[0]?.model ?? 'unknown');
  console.error(`casl: native convolution kernels built (${path.join(out, 'casl_conv.node')})`);
} else {
  console.error(`casl: native convolution kernels not built, the wasm kernels will be used (${res.why})`);
}
