// A generated COCO evaluation case of any size, for the benchmark and the
// memory measurement: several categories, polygon objects of all sizes,
// some crowd regions (RLE), and detections that are jittered copies of the
// objects (some in the wrong category) plus background false positives,
// with box and mask for each. Deterministic for a seed.

import { Rng } from '../augment/rng.js';
import { rleFromPolygon, rleToJson, rleArea, rleToBbox } from '../geometry/mask.js';
import type { Instance, PredictionRecord } from '../records.js';

export interface SyntheticOptions {
  images: number;
  detsPerImage: number;
  categories?: number;
  /** Ground-truth objects per image: 1..maxObjects. */
  maxObjects?: number;
  seed?: number;
  /** Index of the first image, so a large case can be generated in pieces. */
  firstImage?: number;
  /** Id of the first annotation. */
  firstAnnotationId?: number;
  width?: number;
  height?: number;
}

export interface SyntheticCase {
  gt: {
    images: { id: number; file_name: string; width: number; height: number }[];
    annotations: { id: number; image_id: number; category_id: number; bbox: number[]; area: number; iscrowd: number; segmentation: unknown }[];
    categories: { id: number; name: string }[];
  };
  /** Per image, the detections as casl prediction records (box and mask). */
  predictions: PredictionRecord[];
}

/** The id of the i-th generated image. */
export function imageId(i: number): number {
  return 1000 + i * 3;
}

function prng(seed: number): () => number {
  const rng = new Rng(seed);
  return () => rng.next();
}

/** A star-shaped polygon around (cx, cy) with radii up to rx, ry. */
function blob(rand: () => number, cx: number, cy: number, rx: number, ry: number): number[] {
  const n = 6 + Math.floor(rand() * 10);
  const poly: number[] = [];
  for (let i = 0; i < n; i++) {
    const a = (2 * Math.PI * i) / n;
    const r = 0.6 + 0.4 * rand();
    poly.push(+(cx + Math.cos(a) * rx * r).toFixed(2), +(cy + Math.sin(a) * ry * r).toFixed(2));
  }
  return poly;
}

function boxOf(poly: number[]): number[] {
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (let i = 0; i < poly.length; i += 2) {
    x0 = Math.min(x0, poly[i]); x1 = Math.max(x1, poly[i]);
    y0 = Math.min(y0, poly[i + 1]); y1 = Math.max(y1, poly[i + 1]);
  }
  return [x0, y0, +(x1 - x0).toFixed(2), +(y1 - y0).toFixed(2)];
}

/** An object size: a third small, a third medium, a third large (COCO's area ranges). */
function radius(rand: () => number, w: number, h: number): number {
  const u = rand();
  const r = u < 0.35 ? 3 + rand() * 12 : u < 0.7 ? 18 + rand() * 30 : 55 + rand() * 80;
  return Math.min(r, w / 3, h / 3);
}

export function syntheticCase(opts: SyntheticOptions): SyntheticCase {
  const rand = prng(opts.seed ?? 1);
  const W = opts.width ?? 640, H = opts.height ?? 480;
  const K = opts.categories ?? 8;
  const maxObjects = opts.maxObjects ?? 12;
  const categories = Array.from({ length: K }, (_, k) => ({ id: 1 + 2 * k, name: `class${k}` }));
  const images: SyntheticCase['gt']['images'] = [];
  const annotations: SyntheticCase['gt']['annotations'] = [];
  const predictions: PredictionRecord[] = [];
  const first = opts.firstImage ?? 0;
  let annId = opts.firstAnnotationId ?? 1;
  for (let i = first; i < first + opts.images; i++) {
    const id = imageId(i);
    images.push({ id, file_name: `${id}.jpg`, width: W, height: H });
    const objects: { poly: number[]; cat: number }[] = [];
    const nObj = 1 + Math.floor(rand() * maxObjects);
    for (let o = 0; o < nObj; o++) {
      const r = radius(rand, W, H);
      const poly = blob(rand, r + rand() * (W - 2 * r), r + rand() * (H - 2 * r), r, r * (0.6 + 0.8 * rand()));
      const cat = categories[Math.floor(rand() * K)].id;
      const rle = rleFromPolygon(poly, H, W);
      if (rand() < 0.06) {
        // A crowd region, stored as uncompressed RLE like COCO's crowds.
        annotations.push({ id: annId++, image_id: id, category_id: cat, bbox: rleToBbox(rle), area: rleArea(rle), iscrowd: 1, segmentation: { size: [H, W], counts: [...rle.counts] } });
      } else {
        annotations.push({ id: annId++, image_id: id, category_id: cat, bbox: boxOf(poly), area: rleArea(rle), iscrowd: 0, segmentation: [poly] });
      }
      objects.push({ poly, cat });
    }
    const instances: Instance[] = [];
    for (let d = 0; d < opts.detsPerImage; d++) {
      let poly: number[];
      let cat: number;
      let score: number;
      if (d < objects.length * 2 && rand() < 0.8) {
        const obj = objects[d % objects.length];
        const b = boxOf(obj.poly);
        const jx = (rand() - 0.5) * 0.3 * b[2], jy = (rand() - 0.5) * 0.3 * b[3];
        poly = obj.poly.map((v, j) => +Math.min(Math.max(v + (j % 2 ? jy : jx), 0), j % 2 ? H - 1 : W - 1).toFixed(2));
        cat = rand() < 0.85 ? obj.cat : categories[Math.floor(rand() * K)].id;
        score = 0.3 + 0.7 * rand();
      } else {
        const r = radius(rand, W, H);
        poly = blob(rand, r + rand() * (W - 2 * r), r + rand() * (H - 2 * r), r, r);
        cat = categories[Math.floor(rand() * K)].id;
        score = 0.6 * rand();
      }
      const mask = rleFromPolygon(poly, H, W);
      // Scores on a coarse grid so that ties occur, as they do in real detectors' outputs.
      instances.push({ bbox: boxOf(poly) as Instance['bbox'], score: Math.round(score * 1000) / 1000, category_id: cat, segmentation: rleToJson(mask) });
    }
    predictions.push({ image_id: id, file_name: `${id}.jpg`, width: W, height: H, instances });
  }
  return { gt: { images, annotations, categories }, predictions };
}

/** The predictions flattened to pycocotools' results format: with `box` the box results, else mask results without boxes. */
export function toResults(predictions: PredictionRecord[], kind: 'bbox' | 'segm'): object[] {
  const out: object[] = [];
  for (const p of predictions) {
    for (const inst of p.instances) {
      out.push(kind === 'bbox'
        ? { image_id: p.image_id, category_id: inst.category_id, bbox: inst.bbox, score: inst.score }
        : { image_id: p.image_id, category_id: inst.category_id, segmentation: inst.segmentation, score: inst.score });
    }
  }
  return out;
}
