// Inference end to end: forward, post-processing, boxes back to each
// original image through its letterbox, as COCO instances.
//   images [B, S, S, 3] letterboxed to the model's S
//   → per image: Detections in original pixels, or Instance[] (bbox [x, y, w, h])
import type * as tf from '@tensorflow/tfjs-core';
import type { Instance } from '../records.js';
import { type Detector, disposeOutput, forward } from './detector.js';
import { type Points, makePoints } from './points.js';
import { type Detections, type Letterbox, postprocess, toOriginal } from './postprocess.js';

/** Where an input came from: its original size and the letterbox that made the view. */
export interface View {
  width: number;
  height: number;
  letterbox: Letterbox;
}

const pointsCache = new WeakMap<Detector, Map<number, Points>>();

function pointsFor(det: Detector, S: number): Points {
  let m = pointsCache.get(det);
  if (!m) pointsCache.set(det, (m = new Map()));
  let p = m.get(S);
  if (!p) m.set(S, (p = makePoints(det.config, S)));
  return p;
}

/**
 * Detections per image; with `views`, in original-image pixels (clipped to
 * it), otherwise in model-input pixels. The input tensor stays the caller's.
 */
export async function predict(det: Detector, images: tf.Tensor4D, views?: View[]): Promise<Detections[]> {
  const S = images.shape[1];
  if (views && views.length !== images.shape[0]) throw new Error(`predict: ${views.length} views for a batch of ${images.shape[0]} images`);
  const out = forward(det, images);
  try {
    const dets = await postprocess(out, pointsFor(det, S), S, det.config.inference);
    return views ? dets.map((d, i) => toOriginal(d, views[i].letterbox, views[i].width, views[i].height)) : dets;
  } finally {
    disposeOutput(out);
  }
}

/**
 * COCO instances of one image's detections. `categoryIds[k]` is the
 * category of classifier channel k (default k + 1: category 1 = "object"
 * for the class-agnostic K = 1 model).
 */
export function toInstances(d: Detections, categoryIds?: number[]): Instance[] {
  return Array.from(d.scores, (score, i) => {
    const [x1, y1, x2, y2] = d.boxes.subarray(4 * i, 4 * i + 4);
    return { bbox: [x1, y1, x2 - x1, y2 - y1], score, category_id: categoryIds ? categoryIds[d.labels[i]] : d.labels[i] + 1 };
  });
}
