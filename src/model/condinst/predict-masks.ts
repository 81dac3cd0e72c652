// CondInst at inference: each kept detection's controller parameters (at
// the location it came from) run the dynamic head over its image's mask
// features on the backend; the small stride-8 logit maps come down in one
// download, and the rest happens on the CPU per instance:
//   logits [h, w] → bilinear to the model input S × S (half-pixel centres,
//   as resizeBilinear) → σ > threshold (⇔ logit > log(t/(1 − t))) → each
//   original pixel takes the view pixel its centre lands in (the view's
//   inverse transform, which also crops away letterbox padding) → COCO
//   compressed RLE (geometry/mask.ts).
// Done in JS on the small logit maps (a separable resize, then one lookup
// per original pixel in the RLE's column-major order): resizing every
// detection's logits to S × S on the backend and downloading them cost
// about 10× the box-only inference.
//   box towers, maskFeats [B, h, w, C], dets[b] with `locations`
//   → logits[b][i] Float32Array h·w (row-major)
import * as tf from '@tensorflow/tfjs-core';
import type { GeometricTransform } from '../../augment/geometric.js';
import { type RleMask, rleToJson } from '../../geometry/mask.js';
import type { Rle } from '../../records.js';
import type { Points } from '../points.js';
import type { Detections } from '../postprocess.js';
import type { Params } from '../params.js';
import { controllerRows } from './controller.js';
import { dynamicMaskHead } from './dynamic-head.js';
import type { MaskConfig } from './mask-config.js';
import { locationSoi } from './mask-targets.js';
import { MASK_FEATURE_STRIDE } from './loss.js';

/** A detection's mask logits at the mask features' stride. */
export interface MaskLogits {
  data: Float32Array;
  h: number;
  w: number;
  /** Side of the model input the logits cover (S). */
  S: number;
  /** Logit above which a pixel is inside: log(t/(1 − t)) for the config's threshold t. */
  cut: number;
}

/** Every detection's mask logits, per image. */
export async function predictMasks(
  weights: Params, out: { boxTowers?: tf.Tensor4D[]; maskFeats?: tf.Tensor4D }, dets: Detections[], points: Points, S: number, m: MaskConfig,
): Promise<MaskLogits[][]> {
  if (!out.boxTowers || !out.maskFeats) throw new Error('predictMasks: the model has no mask branch (its config has no `mask` block)');
  const B = out.maskFeats.shape[0];
  const L = points.L;
  const [, h, w] = out.maskFeats.shape;
  if (dets.length !== B) throw new Error(`predictMasks: ${dets.length} images of detections for a batch of ${B}`);
  // One row per detection, image by image.
  const start = [0];
  for (const d of dets) start.push(start[start.length - 1] + d.scores.length);
  const R = start[B];
  if (R === 0) return dets.map(() => []);
  const rows = new Int32Array(R);
  const centers = new Float32Array(R * 2);
  const soi = new Float32Array(R);
  const levelSoi = locationSoi(points, m, S);
  dets.forEach((d, b) => {
    if (d.scores.length > 0 && !d.locations) throw new Error('predictMasks: detections carry no locations (make them with postprocess)');
    for (let i = 0; i < d.scores.length; i++) {
      const loc = d.locations![i];
      const r = start[b] + i;
      rows[r] = b * L + loc;
      centers[2 * r] = points.data[5 * loc];
      centers[2 * r + 1] = points.data[5 * loc + 1];
      soi[r] = levelSoi[loc];
    }
  });
  // The head one image at a time: its layer-1 product carries a zero block
  // per other image of the batch (dynamic-head.ts), B× the work at B = 16.
  const logits = tf.tidy(() => {
    const params = controllerRows(weights, out.boxTowers!, rows);
    const perImage: tf.Tensor3D[] = [];
    dets.forEach((d, b) => {
      const n = d.scores.length;
      if (n === 0) return;
      const r0 = start[b];
      perImage.push(dynamicMaskHead(
        tf.slice(out.maskFeats!, [b, 0, 0, 0], [1, -1, -1, -1]), tf.slice(params, [r0, 0], [n, -1]), new Int32Array(n),
        centers.subarray(2 * r0, 2 * (r0 + n)), soi.subarray(r0, r0 + n), MASK_FEATURE_STRIDE, m,
      ));
    });
    return tf.concat(perImage, 0);
  });
  let data: Float32Array;
  try {
    data = (await logits.data()) as Float32Array;
  } finally {
    logits.dispose();
  }
  const cut = Math.log(m.threshold / (1 - m.threshold));
  return dets.map((d, b) => Array.from({ length: d.scores.length }, (_, i) => {
    const r = start[b] + i;
    return { data: data.slice(r * h * w, (r + 1) * h * w), h, w, S, cut };
  }));
}

/** Per output index of a bilinear resize inLen → outLen (half-pixel centres): the two taps and the second one's weight. */
function taps(inLen: number, outLen: number): { i0: Int32Array; i1: Int32Array; t: Float32Array } {
  const f = outLen / inLen;
  const i0 = new Int32Array(outLen);
  const i1 = new Int32Array(outLen);
  const t = new Float32Array(outLen);
  for (let d = 0; d < outLen; d++) {
    const src = Math.min(Math.max((d + 0.5) / f - 0.5, 0), inLen - 1);
    i0[d] = Math.floor(src);
    i1[d] = Math.min(i0[d] + 1, inLen - 1);
    t[d] = src - i0[d];
  }
  return { i0, i1, t };
}

/**
 * The S × S view mask (row-major 0/1): the bilinear resize done separably
 * (along x on the h logit rows, then along y), then the threshold.
 */
export function viewMask(m: MaskLogits): Uint8Array {
  const { S, h, w, data } = m;
  const tx = taps(w, S);
  const ty = taps(h, S);
  const rowsX = new Float32Array(h * S);
  for (let i = 0; i < h; i++) {
    for (let u = 0; u < S; u++) {
      const a = tx.t[u];
      rowsX[i * S + u] = data[i * w + tx.i0[u]] * (1 - a) + data[i * w + tx.i1[u]] * a;
    }
  }
  const out = new Uint8Array(S * S);
  for (let v = 0; v < S; v++) {
    const r0 = ty.i0[v] * S, r1 = ty.i1[v] * S, b = ty.t[v];
    for (let u = 0; u < S; u++) out[v * S + u] = rowsX[r0 + u] * (1 - b) + rowsX[r1 + u] * b > m.cut ? 1 : 0;
  }
  return out;
}

/** For each output index, the input index its centre falls in under view = s·x + t, or −1 outside (GeometricTransform.applyMask's rule). */
function nearest(s: number, t: number, outLen: number, inLen: number): Int32Array {
  const idx = new Int32Array(outLen);
  for (let o = 0; o < outLen; o++) {
    const x = Math.floor((o + 0.5 - t) / s);
    idx[o] = x >= 0 && x < inLen ? x : -1;
  }
  return idx;
}

/**
 * A detection's mask in the original image's pixels as COCO compressed RLE.
 * `back` maps the view (S × S) to the original (the view's `inverse()`).
 */
export function maskToOriginal(m: MaskLogits, back: GeometricTransform, width: number, height: number): Rle {
  if (back.outWidth !== width || back.outHeight !== height) {
    throw new Error(`maskToOriginal: the transform maps to ${back.outWidth}×${back.outHeight}, the image is ${width}×${height}`);
  }
  if (back.inWidth !== m.S || back.inHeight !== m.S) throw new Error(`maskToOriginal: the transform starts from ${back.inWidth}×${back.inHeight}, the view is ${m.S}×${m.S}`);
  const cols = nearest(back.affine.sx, back.affine.tx, width, m.S);
  const rows = nearest(back.affine.sy, back.affine.ty, height, m.S);
  const view = viewMask(m);
  // Column-major runs, starting with a run of 0s (geometry/mask.ts's layout).
  // Original columns that read the same view column are the same column: its
  // runs are made once and appended again, merged at the column boundary.
  const counts: number[] = [];
  let prev = 0;
  let colU = -2;
  let colRuns: number[] = []; // alternating lengths, the first of value colFirst
  let colFirst = 0;
  for (let x = 0; x < width; x++) {
    const u = cols[x];
    if (u !== colU) {
      colU = u;
      colRuns = [];
      colFirst = u >= 0 && rows[0] >= 0 ? view[rows[0] * m.S + u] : 0;
      let val = colFirst;
      let len = 0;
      for (let y = 0; y < height; y++) {
        const v = rows[y];
        const inside = u >= 0 && v >= 0 ? view[v * m.S + u] : 0;
        if (inside !== val) {
          colRuns.push(len);
          len = 0;
          val = inside;
        }
        len++;
      }
      colRuns.push(len);
    }
    let val = colFirst;
    for (const len of colRuns) {
      if (val === prev && counts.length > 0) counts[counts.length - 1] += len;
      else if (val === prev) counts.push(len);
      else {
        if (counts.length === 0) counts.push(0);
        counts.push(len);
        prev = val;
      }
      val ^= 1;
    }
  }
  if (counts.length === 0) counts.push(0);
  const rle: RleMask = { h: height, w: width, counts: Uint32Array.from(counts) };
  return rleToJson(rle);
}
