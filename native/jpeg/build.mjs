// Builds casl's JPEG fast path (native/jpeg/build/Release/casl_jpeg.node; run
// by make build). A failed build is not an error: casl then letterboxes
// JPEGs with sharp, at about twice the CPU per image (README: Decoding).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildAddon } from '../build-addon.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const res = buildAddon(here);
if (res.ok) {
  console.error(`casl: JPEG fast path built (${path.join(here, 'build', 'Release', 'casl_jpeg.node')})`);
} else {
  console.error(`casl: JPEG fast path not built, sharp will decode JPEGs (${res.why}); it needs g++, make, Node's headers`
    + ' and libjpeg-turbo\'s (apt-get install libjpeg62-turbo-dev); retry with: node native/jpeg/build.mjs');
}
