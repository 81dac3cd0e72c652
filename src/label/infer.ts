// Batched inference as a stream stage, with test-time views.
//
//   decoded records → [views of each image] → forward on batches of B views
//     → post-processing in view pixels → each view's boxes through its
//     inverse transform → merged per image → prediction records
//
// V views per image, B views a batch (⌊B/V⌋ images), S the model side.
// View 0 is always the plain letterbox; views 1..V−1 are drawn from the
// policy with a seed derived from (seed, image_id, view), so an image gets
// the same views whatever batch it lands in — a resumed or sharded run
// predicts exactly what an uninterrupted one does.
//
// With a CondInst model (`config.mask`), every instance also carries its
// mask: predicted in the view, mapped back through the view's inverse
// transform, COCO compressed RLE in original-image pixels (`segmentation`).
//
// Views are merged by class-aware NMS at the model's NMS IoU, not by
// weighted box fusion: NMS keeps each surviving box's own score, so the δ
// of the filter means the same thing with one view or many; WBF averages
// scores (and with views that missed an object, lowers them), which would
// shift the meaning of δ with V.
import * as tf from '@tensorflow/tfjs-core';
import type { Instance, PredictionMeta, PredictionRecord } from '../records.js';
import type { CanvasPool, DecodedRecord, RgbImage } from '../io/decode.js';
import { toFloat32 } from '../io/decode.js';
import { type Detector, disposeOutput, forward } from '../model/detector.js';
import { makePoints, type Points } from '../model/points.js';
import { type Detections, postprocess, nms } from '../model/postprocess.js';
import { GeometricTransform } from '../augment/geometric.js';
import { AugmentTransform } from '../augment/transform.js';
import { drawTransform, type PolicyName } from '../augment/policy.js';
import { Rng, deriveSeed } from '../augment/rng.js';
import { type MaskLogits, maskToOriginal, predictMasks } from '../model/condinst/predict-masks.js';
import { batch, errorFrom, orderedMap, unbatch, type OrError, type Stage } from '../streams/index.js';
import type { InferencePool } from './infer-pool.js';

export interface InferOptions {
  detector: Detector;
  /** Views per forward pass (B). */
  batchSize: number;
  aug: PolicyName;
  /** Views per image (V): 1 is the plain letterbox only. */
  views: number;
  seed: number;
  /**
   * Compute masks only for detections whose (rounded) score is above this:
   * `casl pseudo-label` passes δ, since the filter drops the others anyway
   * and a mask costs far more than a box. Their boxes stay, so the filter's
   * counts are those of a run without it.
   */
  minScore?: number;
  /** COCO category id of each classifier channel; default k + 1. */
  categoryIds?: number[];
  meta: PredictionMeta;
  /**
   * Inference worker threads with `detector`'s weights (the caller starts
   * and closes it): the forward pass and post-processing run there while
   * this thread decodes and writes. Without it they run on this thread.
   * Box models only: CondInst's masks need the head's outputs here.
   */
  pool?: InferencePool;
  /**
   * The pool the decoder took the records' canvases from: each goes back
   * once its pixels are copied into a batch (the records' `image` must not
   * be read after that; no one downstream of this stage does).
   */
  canvases?: CanvasPool;
}

/** Whether an InferencePool can run `det`: box models on the wasm backend (the workers' backend). */
export function poolCanRun(det: Detector): boolean {
  return !det.config.mask && tf.getBackend() === 'wasm';
}

/** The backend named in the metadata of predictions made in an InferencePool. */
export function poolBackendName(pool: InferencePool): string {
  return `${pool.backend} × ${pool.size} worker thread${pool.size === 1 ? '' : 's'}`;
}

interface View {
  transform: AugmentTransform;
  image: RgbImage; // S × S
}

/**
 * The V views of one decoded image. Its `image` is either the S × S canvas
 * of the decoder's letterbox (the fast path, for V = 1 without augmentation)
 * or the image at full resolution, from which every view is resampled.
 */
export function viewsOf(rec: DecodedRecord, S: number, aug: PolicyName, V: number, seed: number): View[] {
  const { width, height } = rec;
  const isCanvas = rec.image.width !== width || rec.image.height !== height;
  if (isCanvas) {
    if (V !== 1 || aug !== 'none') throw new Error('viewsOf: test-time views need the image at full resolution (decode without a size)');
    const t = new AugmentTransform(GeometricTransform.fromLetterbox(rec.letterbox, width, height, S, S));
    return [{ transform: t, image: rec.image }];
  }
  const plain = new AugmentTransform(GeometricTransform.letterbox(width, height, S));
  const views: View[] = [{ transform: plain, image: plain.applyImage(rec.image) }];
  for (let v = 1; v < V; v++) {
    const t = drawTransform(aug, new Rng(deriveSeed(seed, rec.image_id, v)), width, height, S);
    views.push({ transform: t, image: t.applyImage(rec.image) });
  }
  return views;
}

// Boxes are written with 2 decimals, scores with 5. The powers of ten are
// constants: a `10 ** d` per value cost a pow call each, a hundred an image.
const roundBox = (x: number) => Math.round(x * 100) / 100;
const roundScore = (x: number) => Math.round(x * 1e5) / 1e5;

/** Indices of the detections whose score, as written, is above `min` (the δ rule of the filter). */
function scoreAbove(d: Detections, min: number): number[] {
  const keep: number[] = [];
  for (let j = 0; j < d.scores.length; j++) if (roundScore(d.scores[j]) > min) keep.push(j);
  return keep;
}

function subset(d: Detections, keep: number[]): Detections {
  const boxes = new Float32Array(4 * keep.length);
  keep.forEach((j, i) => boxes.set(d.boxes.subarray(4 * j, 4 * j + 4), 4 * i));
  return {
    boxes,
    scores: Float32Array.from(keep, (j) => d.scores[j]),
    labels: Int32Array.from(keep, (j) => d.labels[j]),
    ...(d.locations ? { locations: Int32Array.from(keep, (j) => d.locations![j]) } : {}),
  };
}

/**
 * Decoded records → prediction records (boxes in original-image pixels).
 * Error records pass through. One forward pass runs at a time while the
 * decoding upstream keeps working on the next images.
 */
export function inferImages(opts: InferOptions): Stage<OrError<DecodedRecord>, OrError<PredictionRecord>> {
  const det = opts.detector;
  const S = det.config.inputSize;
  const K = det.config.numClasses;
  const points: Points = makePoints(det.config, S);
  const V = opts.views;
  const imagesPerBatch = Math.max(1, Math.floor(opts.batchSize / V));
  const catIds = opts.categoryIds ?? Array.from({ length: K }, (_, k) => k + 1);
  if (catIds.length !== K) throw new Error(`inferImages: ${catIds.length} category ids for a model with K = ${K}`);
  const pool = opts.pool;
  if (pool && det.config.mask) throw new Error('inferImages: a CondInst model runs on this thread (its masks need the head\'s outputs here), not in an InferencePool');
  // What computes is the workers' backend, not this thread's.
  const meta: PredictionMeta = { ...opts.meta, ...(pool ? { backend: poolBackendName(pool) } : {}), aug: opts.aug, views: V };

  const onThisThread = async (pixels: Float32Array, n: number): Promise<{ dets: Detections[]; masks?: (MaskLogits | undefined)[][] }> => {
    const x = tf.tensor4d(pixels, [n, S, S, 3]);
    let out;
    try {
      out = forward(det, x);
    } finally {
      x.dispose();
    }
    let dets: Detections[];
    let masks: (MaskLogits | undefined)[][] | undefined;
    try {
      dets = await postprocess(out, points, S, det.config.inference);
      if (det.config.mask) {
        // masks[view][detection], undefined for detections left without one.
        const wanted = dets.map((d) => (opts.minScore === undefined ? null : scoreAbove(d, opts.minScore)));
        const some = await predictMasks(det.params, out, dets.map((d, v) => (wanted[v] ? subset(d, wanted[v]!) : d)), points, S, det.config.mask);
        masks = some.map((m, v) => {
          const w = wanted[v];
          if (!w) return m;
          const all: (MaskLogits | undefined)[] = new Array(dets[v].scores.length);
          w.forEach((j, i) => (all[j] = m[i]));
          return all;
        });
      }
    } finally {
      disposeOutput(out);
    }
    return { dets, masks };
  };

  // The decoder's S × S canvases, copied into the batch, are free again.
  const giveBack = (recs: DecodedRecord[]) => {
    if (!opts.canvases) return;
    for (const r of recs) if (r.image.data.length === S * S * 3) opts.canvases.give(r.image.data);
  };

  const runBatch = async (recs: DecodedRecord[]): Promise<PredictionRecord[]> => {
    const views = recs.map((r) => viewsOf(r, S, opts.aug, V, opts.seed));
    // A batch of one view computes slightly differently (last-bit float
    // differences) from that view in any larger batch, whatever its
    // position: a lone image in a last batch would then get other scores
    // than in an uninterrupted run, and a score at a rounding boundary a
    // different line. So a lone view gets a blank companion (when batches
    // can hold two), and an image's predictions do not depend on its batch.
    const n = Math.max(recs.length * V, Math.min(2, imagesPerBatch * V));
    const size = S * S * 3;
    let dets: Detections[];
    let masks: (MaskLogits | undefined)[][] | undefined;
    if (pool) {
      // The workers take the bytes and scale them themselves (infer-pool.ts).
      const bytes = pool.take(n * size);
      views.flat().forEach((v, i) => {
        if (v.image.data.length !== size) throw new Error(`inferImages: a view of ${v.image.width} × ${v.image.height} in a batch of ${S} × ${S} inputs`);
        bytes.set(v.image.data, i * size);
      });
      bytes.fill(0, recs.length * V * size, n * size);
      giveBack(recs);
      dets = await pool.predict(bytes, n);
    } else {
      const pixels = new Float32Array(n * size);
      views.flat().forEach((v, i) => toFloat32(v.image, pixels, i * size));
      giveBack(recs);
      ({ dets, masks } = await onThisThread(pixels, n));
    }
    return recs.map((rec, i) => {
      // Every view's boxes in original pixels, then one NMS over all of them.
      // Each box goes through its view's inverse affine as mapBox does (the
      // same arithmetic, so the same numbers), without an array per box.
      const boxes: number[] = [];
      const scores: number[] = [];
      const labels: number[] = [];
      const fromView: number[] = []; // (view, detection) of each candidate, to find its mask
      const fromDet: number[] = [];
      for (let v = 0; v < V; v++) {
        const d = dets[i * V + v];
        const { sx, tx, sy, ty } = views[i][v].transform.inverse().affine;
        const b = d.boxes;
        for (let j = 0; j < d.scores.length; j++) {
          const xa = b[4 * j] * sx + tx, xb = b[4 * j + 2] * sx + tx;
          const ya = b[4 * j + 1] * sy + ty, yb = b[4 * j + 3] * sy + ty;
          const bx1 = Math.min(Math.max(Math.min(xa, xb), 0), rec.width), by1 = Math.min(Math.max(Math.min(ya, yb), 0), rec.height);
          const bx2 = Math.min(Math.max(Math.max(xa, xb), 0), rec.width), by2 = Math.min(Math.max(Math.max(ya, yb), 0), rec.height);
          if (bx2 <= bx1 || by2 <= by1) continue;
          boxes.push(bx1, by1, bx2, by2);
          scores.push(d.scores[j]);
          labels.push(d.labels[j]);
          fromView.push(v);
          fromDet.push(j);
        }
      }
      const keep = V > 1 ? nms(boxes, scores, labels, det.config.inference.nmsIou, det.config.inference.maxDetections) : undefined;
      const count = keep ? keep.length : scores.length;
      const instances: Instance[] = new Array(count);
      for (let k = 0; k < count; k++) {
        const j = keep ? keep[k] : k;
        const x1 = boxes[4 * j], y1 = boxes[4 * j + 1];
        const inst: Instance = {
          bbox: [roundBox(x1), roundBox(y1), roundBox(boxes[4 * j + 2] - x1), roundBox(boxes[4 * j + 3] - y1)],
          score: roundScore(scores[j]),
          category_id: catIds[labels[j]],
        };
        const m = masks?.[i * V + fromView[j]][fromDet[j]];
        if (m) inst.segmentation = maskToOriginal(m, views[i][fromView[j]].transform.inverse(), rec.width, rec.height);
        instances[k] = inst;
      }
      return { image_id: rec.image_id, file_name: rec.file_name, width: rec.width, height: rec.height, instances, meta };
    });
  };

  // A failed batch becomes one error record per image, so every image is
  // still accounted for (a resumed run redoes none of them twice).
  const runOrFail = (recs: DecodedRecord[]): Promise<OrError<PredictionRecord>[]> =>
    runBatch(recs).catch((e: unknown) => recs.map((r) => errorFrom(r, 'infer', e)));

  // With workers, one batch more than there are workers is in flight: it is
  // being converted here while they compute.
  const inFlight = pool ? pool.size + 1 : 1;
  return (s) => s
    .through(batch<DecodedRecord>(imagesPerBatch))
    .through(orderedMap<DecodedRecord[], OrError<PredictionRecord>[]>(inFlight, runOrFail, { stage: 'infer' }))
    .through(unbatch<OrError<PredictionRecord>>()) as Highland.Stream<OrError<PredictionRecord>>;
}
