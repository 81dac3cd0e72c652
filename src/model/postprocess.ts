// Inference post-processing, on plain arrays after one download per batch.
// B images, L locations, K classes, N detections of an image:
//   scores [B, L, K] = sqrt(σ(cls) · σ(ctr))   (computed on the backend)
//   box    [B, L, 4] ltrb pixels, points [L, 5]
//   → per image: boxes [N, 4] x1y1x2y2 in model-input pixels, scores [N], labels [N]
// Per level: score > threshold, the best topkPerLevel; decode and clip to
// [0, S]; then class-wise NMS over all levels and the best maxDetections.
import * as tf from '@tensorflow/tfjs-core';
import type { InferenceConfig } from './config.js';
import type { Points } from './points.js';
import { type Letterbox, boxToOriginalClipped } from '../io/letterbox.js';

export type { Letterbox };

export interface Detections {
  boxes: Float32Array;
  scores: Float32Array;
  labels: Int32Array;
  /** Row of each detection's location in points: CondInst takes its mask parameters there. */
  locations?: Int32Array;
}

/** score = sqrt(σ(cls) · σ(ctr)), [B, L, K]. */
export function detectionScores(cls: tf.Tensor3D, ctr: tf.Tensor3D): tf.Tensor3D {
  return tf.tidy(() => tf.sqrt(tf.mul(tf.sigmoid(cls), tf.sigmoid(ctr))) as tf.Tensor3D);
}

/** IoU of boxes i and j of a flat [N, 4] x1y1x2y2 array. */
export function boxIou(b: ArrayLike<number>, i: number, j: number): number {
  const iw = Math.min(b[4 * i + 2], b[4 * j + 2]) - Math.max(b[4 * i], b[4 * j]);
  const ih = Math.min(b[4 * i + 3], b[4 * j + 3]) - Math.max(b[4 * i + 1], b[4 * j + 1]);
  if (iw <= 0 || ih <= 0) return 0;
  const inter = iw * ih;
  const a = (b[4 * i + 2] - b[4 * i]) * (b[4 * i + 3] - b[4 * i + 1]);
  const c = (b[4 * j + 2] - b[4 * j]) * (b[4 * j + 3] - b[4 * j + 1]);
  return inter / (a + c - inter);
}

/**
 * Greedy class-wise NMS: best score first, a box is dropped when its IoU
 * with a kept box of the same label is above `iou`. Returns kept indices,
 * best first, at most `max`.
 */
export function nms(boxes: ArrayLike<number>, scores: ArrayLike<number>, labels: ArrayLike<number>, iou: number, max: number): number[] {
  const order = Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[b] - scores[a]);
  const kept: number[] = [];
  for (const i of order) {
    if (kept.length >= max) break;
    let keep = true;
    for (const j of kept) {
      if (labels[j] === labels[i] && boxIou(boxes, i, j) > iou) {
        keep = false;
        break;
      }
    }
    if (keep) kept.push(i);
  }
  return kept;
}

/**
 * One image: scores [L·K] and box [L·4] (flat, row-major) → detections in
 * model-input pixels, best first.
 */
export function postprocessImage(scores: Float32Array, box: Float32Array, points: Points, K: number, S: number, inf: InferenceConfig): Detections {
  const cand: number[] = []; // indices into scores (location·K + class)
  // Scores are float32; compare with the float32 threshold, as PyTorch does (0.05f is not above 0.05f).
  const thr = Math.fround(inf.scoreThreshold);
  for (let l = 0; l + 1 < points.levelStart.length; l++) {
    const level: number[] = [];
    for (let q = points.levelStart[l] * K; q < points.levelStart[l + 1] * K; q++) if (scores[q] > thr) level.push(q);
    if (level.length > inf.topkPerLevel) {
      level.sort((a, b) => scores[b] - scores[a]);
      level.length = inf.topkPerLevel;
    }
    cand.push(...level);
  }
  const n = cand.length;
  const bx = new Float32Array(4 * n);
  const sc = new Float32Array(n);
  const lb = new Int32Array(n);
  const clip = (v: number) => Math.min(Math.max(v, 0), S);
  cand.forEach((q, i) => {
    const loc = Math.floor(q / K);
    const x = points.data[5 * loc], y = points.data[5 * loc + 1];
    bx[4 * i] = clip(x - box[4 * loc]);
    bx[4 * i + 1] = clip(y - box[4 * loc + 1]);
    bx[4 * i + 2] = clip(x + box[4 * loc + 2]);
    bx[4 * i + 3] = clip(y + box[4 * loc + 3]);
    sc[i] = scores[q];
    lb[i] = q % K;
  });
  const keep = nms(bx, sc, lb, inf.nmsIou, inf.maxDetections);
  const out: Detections = { boxes: new Float32Array(4 * keep.length), scores: new Float32Array(keep.length), labels: new Int32Array(keep.length), locations: new Int32Array(keep.length) };
  keep.forEach((k, i) => {
    out.boxes.set(bx.subarray(4 * k, 4 * k + 4), 4 * i);
    out.scores[i] = sc[k];
    out.labels[i] = lb[k];
    out.locations![i] = Math.floor(cand[k] / K);
  });
  return out;
}

/** The whole batch: one download of scores and boxes, then per image on the CPU. */
export async function postprocess(
  out: { cls: tf.Tensor3D; box: tf.Tensor3D; ctr: tf.Tensor3D },
  points: Points,
  S: number,
  inf: InferenceConfig,
): Promise<Detections[]> {
  const [B, L, K] = out.cls.shape;
  const scoresT = detectionScores(out.cls, out.ctr);
  const [scores, box] = await Promise.all([scoresT.data() as Promise<Float32Array>, out.box.data() as Promise<Float32Array>]);
  scoresT.dispose();
  return Array.from({ length: B }, (_, b) =>
    postprocessImage(scores.subarray(b * L * K, (b + 1) * L * K), box.subarray(b * L * 4, (b + 1) * L * 4), points, K, S, inf));
}

/**
 * Model-input boxes back to original-image pixels through the letterbox of
 * decoding (src/io/letterbox.ts: view = original · scale + offset), clipped
 * to the image (width × height, the original size); a box that collapses to
 * zero area (it lay wholly in the padding) is dropped, since it covers no
 * pixel of the image.
 */
export function toOriginal(d: Detections, lb: Letterbox, width: number, height: number): Detections {
  const keep: number[] = [];
  const boxes: number[] = [];
  for (let i = 0; i < d.scores.length; i++) {
    const [x1, y1, x2, y2] = d.boxes.subarray(4 * i, 4 * i + 4);
    const [x, y, w, h] = boxToOriginalClipped([x1, y1, x2 - x1, y2 - y1], lb, width, height);
    if (w <= 0 || h <= 0) continue;
    keep.push(i);
    boxes.push(x, y, x + w, y + h);
  }
  return {
    boxes: Float32Array.from(boxes),
    scores: Float32Array.from(keep, (i) => d.scores[i]),
    labels: Int32Array.from(keep, (i) => d.labels[i]),
    ...(d.locations ? { locations: Int32Array.from(keep, (i) => d.locations![i]) } : {}),
  };
}
