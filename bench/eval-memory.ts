// Peak memory of `casl eval` on prediction JSONL of 100,000 images: the
// JSONL is streamed (one image's detections in memory at a time) and only
// what accumulate() needs is kept per detection, so RSS is bounded by the
// ground truth and ~30 bytes a detection, not by the file. The case is
// generated (1–6 polygon objects an image, 8 categories, some crowds; 20
// detections an image with box and RLE mask) and `casl eval` runs in a
// child process whose own peak RSS (getrusage maxrss) is reported.
import { spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Benchmark } from './benchmark.js';
import { PROJECT_ROOT } from '../src/cli/options.js';
import { imageId, syntheticCase } from '../src/eval/synthetic.js';

const CHUNK = 1000;

async function write(out: NodeJS.WritableStream, text: string): Promise<void> {
  if (!out.write(text)) await once(out, 'drain');
}

async function generate(dir: string, images: number, detsPerImage: number): Promise<{ gt: string; jsonl: string; detections: number }> {
  const gt = path.join(dir, 'gt.json');
  const jsonl = path.join(dir, 'predictions.jsonl');
  const g = createWriteStream(gt);
  const p = createWriteStream(jsonl);
  let categories: unknown[] = [];
  let annId = 1;
  let detections = 0;
  await write(g, '{"annotations":[');
  for (let first = 0; first < images; first += CHUNK) {
    const c = syntheticCase({
      images: Math.min(CHUNK, images - first), detsPerImage, maxObjects: 6, seed: 1 + first, firstImage: first, firstAnnotationId: annId,
    });
    categories = c.gt.categories;
    annId += c.gt.annotations.length;
    const anns = c.gt.annotations.map((a) => JSON.stringify(a)).join(',');
    await write(g, (first > 0 && anns ? ',' : '') + anns);
    for (const rec of c.predictions) detections += rec.instances.length;
    await write(p, c.predictions.map((r) => JSON.stringify(r) + '\n').join(''));
  }
  await write(g, '],"images":[');
  for (let i = 0; i < images; i += CHUNK) {
    const part = [];
    for (let j = i; j < Math.min(images, i + CHUNK); j++) part.push(JSON.stringify({ id: imageId(j), file_name: `${imageId(j)}.jpg`, width: 640, height: 480 }));
    await write(g, (i > 0 ? ',' : '') + part.join(','));
  }
  await write(g, `],"categories":${JSON.stringify(categories)}}`);
  g.end();
  p.end();
  await Promise.all([once(g, 'finish'), once(p, 'finish')]);
  return { gt, jsonl, detections };
}

/** Runs `casl eval` in a child and returns its peak RSS in MB, its seconds and its AP. */
async function measure(gt: string, jsonl: string, iou: 'bbox' | 'segm'): Promise<{ rssMb: number; seconds: number; ap: number }> {
  const main = path.join(PROJECT_ROOT, 'dist', 'src', 'cli', 'main.js');
  const script = `import { run } from ${JSON.stringify(main)};
const code = await run(['eval', '--gt', ${JSON.stringify(gt)}, '--dets', ${JSON.stringify(jsonl)}, '--iou', '${iou}', '--json']);
process.stderr.write('MAXRSS ' + process.resourceUsage().maxRSS + '\\n');
process.exitCode = code;`;
  const t0 = performance.now();
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const [code] = await once(child, 'close');
  if (code !== 0) throw new Error(`casl eval exited ${code}: ${err}`);
  const kb = Number(/MAXRSS (\d+)/.exec(err)?.[1]);
  return { rssMb: kb / 1024, seconds: (performance.now() - t0) / 1000, ap: JSON.parse(out).AP };
}

export const benchmark: Benchmark = {
  name: 'eval-memory',
  summary: 'peak RSS of casl eval on prediction JSONL of 100,000 images (bbox and segm)',
  async run(opts) {
    const images = opts.quick ? 5000 : 100_000;
    const detsPerImage = 20;
    const dir = mkdtempSync(path.join(tmpdir(), 'casl-bench-evalmem-'));
    try {
      opts.log(`generating ${images} images × ${detsPerImage} detections`);
      const { gt, jsonl, detections } = await generate(dir, images, detsPerImage);
      const mb = (f: string) => statSync(f).size / 2 ** 20;
      opts.log(`gt ${mb(gt).toFixed(0)} MB, predictions ${mb(jsonl).toFixed(0)} MB; casl eval --iou bbox`);
      const bbox = await measure(gt, jsonl, 'bbox');
      opts.log('casl eval --iou segm');
      const segm = await measure(gt, jsonl, 'segm');
      return {
        figures: {
          images,
          detections,
          gt_mb: +mb(gt).toFixed(1),
          jsonl_mb: +mb(jsonl).toFixed(1),
          bbox_peak_rss_mb: +bbox.rssMb.toFixed(0),
          segm_peak_rss_mb: +segm.rssMb.toFixed(0),
          bbox_s: +bbox.seconds.toFixed(1),
          segm_s: +segm.seconds.toFixed(1),
        },
        table: [
          ['iou', 'peak RSS (MB)', 'seconds (with start-up)', 'AP'],
          ['bbox', bbox.rssMb, bbox.seconds, bbox.ap],
          ['segm', segm.rssMb, segm.seconds, segm.ap],
        ],
        notes: [
          `${images} images, ${detections} detections (${mb(jsonl).toFixed(0)} MB of JSONL), ground truth ${mb(gt).toFixed(0)} MB; peak RSS is the child's getrusage maxrss.`,
        ],
      };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
