// Builds casl's decode fast path for JPEG and PNG
// (native/jpeg/build/Release/casl_jpeg.node; run by make build). A failed
// build is not an error: casl then decodes every image with sharp, at about
// twice the CPU per image (README: Decoding).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildAddon } from '../build-addon.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const res = buildAddon(here);
if (res.ok) {
  console.error(`casl: JPEG/PNG fast path built (${path.join(here, 'build', 'Release', 'casl_jpeg.node')})`);
} else {
  console.error(`casl: JPEG/PNG fast path not built, sharp will decode every image (${res.why}); it needs g++, make, Node's headers,`
    + ' libjpeg-turbo\'s and libpng\'s (apt-get install libjpeg62-turbo-dev libpng-dev); retry with: node native/jpeg/build.mjs');
}
