// casl eval against pycocotools on a generated case of 500 images × 100
// detections (8 categories, polygon objects of all sizes, ~6% crowd regions
// as RLE, score ties): seconds for bbox and segm from detections already in
// memory (what COCOeval's evaluate + accumulate + summarize do after
// json.load, plus loadRes' per-detection work), and from the files on disk.
// pycocotools cannot be installed on this machine (no PyPI, not in Debian),
// so its figures are quoted from the issue, not measured here.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Benchmark } from './benchmark.js';
import { evaluateFiles, evaluateResults } from '../src/eval/detections.js';
import { indexGroundTruth } from '../src/eval/ground-truth.js';
import { syntheticCase, toResults } from '../src/eval/synthetic.js';

/** pycocotools 2.0.x on this machine, as the issue quotes them (seconds). */
const PYCOCOTOOLS_QUOTED = { bbox: 4.5, segm: 6 };

function best(runs: number, fn: () => void): number {
  let min = Infinity;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    min = Math.min(min, (performance.now() - t0) / 1000);
  }
  return min;
}

async function bestAsync(runs: number, fn: () => Promise<unknown>): Promise<number> {
  let min = Infinity;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    min = Math.min(min, (performance.now() - t0) / 1000);
  }
  return min;
}

export const benchmark: Benchmark = {
  name: 'eval',
  summary: 'COCO evaluation of 500 images × 100 detections, bbox and segm (pycocotools: quoted)',
  async run(opts) {
    const images = opts.quick ? 50 : 500;
    const runs = opts.quick ? 1 : 3;
    opts.log(`generating ${images} images × 100 detections`);
    const c = syntheticCase({ images, detsPerImage: 100, seed: 7 });
    const boxes = toResults(c.predictions, 'bbox');
    const masks = toResults(c.predictions, 'segm');
    const gt = indexGroundTruth(c.gt, 'generated');
    const dir = mkdtempSync(path.join(tmpdir(), 'casl-bench-eval-'));
    try {
      const files = { gt: path.join(dir, 'gt.json'), bbox: path.join(dir, 'bbox.json'), segm: path.join(dir, 'segm.json') };
      writeFileSync(files.gt, JSON.stringify(c.gt));
      writeFileSync(files.bbox, JSON.stringify(boxes));
      writeFileSync(files.segm, JSON.stringify(masks));
      // JSON.parse copies: each run gets fresh objects, as each pycocotools run loads its own.
      opts.log('bbox');
      const bboxS = best(runs, () => evaluateResults(gt, boxes, 'bbox', 'bbox.json'));
      const bboxFileS = await bestAsync(runs, () => evaluateFiles({ gt: files.gt, dets: files.bbox, iouType: 'bbox' }));
      opts.log('segm');
      const segmS = best(runs, () => evaluateResults(gt, masks, 'segm', 'segm.json'));
      const segmFileS = await bestAsync(runs, () => evaluateFiles({ gt: files.gt, dets: files.segm, iouType: 'segm' }));
      const ap = evaluateResults(gt, boxes, 'bbox', 'bbox.json').summary.AP;
      const figures = {
        images,
        detections: boxes.length,
        bbox_s: +bboxS.toFixed(3),
        segm_s: +segmS.toFixed(3),
        bbox_file_s: +bboxFileS.toFixed(3),
        segm_file_s: +segmFileS.toFixed(3),
        pycocotools_bbox_s_quoted: PYCOCOTOOLS_QUOTED.bbox,
        pycocotools_segm_s_quoted: PYCOCOTOOLS_QUOTED.segm,
        speedup_bbox_vs_quoted: +(PYCOCOTOOLS_QUOTED.bbox / bboxFileS).toFixed(1),
        speedup_segm_vs_quoted: +(PYCOCOTOOLS_QUOTED.segm / segmFileS).toFixed(1),
        bbox_AP: +ap.toFixed(4),
      };
      return {
        figures,
        table: [
          ['iou', 'casl, in memory (s)', 'casl, from files (s)', 'pycocotools (s, quoted)', 'speed-up (files vs quoted)'],
          ['bbox', bboxS, bboxFileS, PYCOCOTOOLS_QUOTED.bbox, `${figures.speedup_bbox_vs_quoted}×`],
          ['segm', segmS, segmFileS, PYCOCOTOOLS_QUOTED.segm, `${figures.speedup_segm_vs_quoted}×`],
        ],
        notes: [
          `${images} images, ${boxes.length} detections, ${c.gt.annotations.length} ground-truth objects in ${c.gt.categories.length} categories; best of ${runs} runs.`,
          '"in memory": detections already parsed (loadRes + evaluate + accumulate + summarize); "from files": `casl eval` end to end minus process start, JSON parsing included.',
          'pycocotools is not installable here (no PyPI, not in Debian): its seconds are the issue\'s figures for this machine, quoted, not measured in this run.',
        ],
      };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
