// `casl bench decode --quick --json` runs end to end and reports the keys
// the issue names. A smoke run: the figures are checked for shape and for
// the memory bound, never for speed (speed is what the benchmark shows).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from '../src/cli/options.js';

const bin = path.join(PROJECT_ROOT, 'bin', 'casl.js');
const built = existsSync(path.join(PROJECT_ROOT, 'dist', 'bench', 'decode.js'));

t.test('casl bench decode --quick --json', { skip: built ? false : 'dist/ not built: run make build' }, async (t) => {
  const res = spawnSync(process.execPath, [bin, 'bench', 'decode', '--quick', '--json'], { encoding: 'utf8', timeout: 300_000 });
  t.equal(res.status, 0, `exit 0 (stderr: ${res.stderr.slice(-500)})`);
  const figures = JSON.parse(res.stdout) as Record<string, number | null>;
  for (const key of ['decode_images_per_s_c1', 'decode_images_per_s_c2', 'ingest_peak_rss_mb', 'decode_cpu_ms_per_image_c1',
    'png_cpu_ms_per_image_c2', 'png_cpu_ms_per_image_c2_sharp', 'view_jpeg_cpu_ms_per_image', 'view_png_cpu_ms_per_image']) {
    t.ok(typeof figures[key] === 'number' && figures[key]! > 0, `${key} is a positive number (${figures[key]})`);
  }
  t.ok(figures.pillow_images_per_s === null || figures.pillow_images_per_s > 0, 'pillow_images_per_s: null without Pillow, else a rate');
  t.equal(figures.ingest_files, 2000);
  t.ok(figures.ingest_peak_rss_mb! < 150, `casl ingest stays under 150 MB (${figures.ingest_peak_rss_mb} MB)`);
});
