// CondInst at inference: each kept detection's controller parameters (at
// the location it came from) run the dynamic head over its image's mask
// features; the stride-8 logits are resized bilinearly to the model input
// S × S and thresholded (σ(logit) > threshold ⇔ logit > log(t/(1 − t))).
// Then, on the CPU, a view mask goes back to the original image through the
// view's inverse transform (which also crops away the letterbox padding)
// and becomes COCO compressed RLE (geometry/mask.ts).
//   controller [B, L, P], maskFeats [B, S/8, S/8, C], dets[b] with `locations`
//   → masks[b][i]  Uint8Array S·S row-major 0/1, in model-input (view) pixels
import * as tf from '@tensorflow/tfjs-core';
import type { GeometricTransform } from '../../augment/geometric.js';
import { encodeMask, rleToJson } from '../../geometry/mask.js';
import type { Rle } from '../../records.js';
import type { Points } from '../points.js';
import type { Detections } from '../postprocess.js';
import { dynamicMaskHead, resizeBilinear } from './dynamic-head.js';
import type { MaskConfig } from './mask-config.js';
import { locationSoi } from './mask-targets.js';
import { MASK_FEATURE_STRIDE } from './loss.js';

/** Every detection's mask at S × S in view pixels, per image. */
export async function predictMasks(
  out: { controller?: tf.Tensor3D; maskFeats?: tf.Tensor4D }, dets: Detections[], points: Points, S: number, m: MaskConfig,
): Promise<Uint8Array[][]> {
  if (!out.controller || !out.maskFeats) throw new Error('predictMasks: the model has no mask branch (its config has no `mask` block)');
  const [B, L, P] = out.controller.shape;
  if (dets.length !== B) throw new Error(`predictMasks: ${dets.length} images of detections for a batch of ${B}`);
  const N = Math.max(1, ...dets.map((d) => d.scores.length));
  const rows = new Int32Array(B * N);
  const centers = new Float32Array(B * N * 2);
  const soi = new Float32Array(B * N).fill(1);
  const levelSoi = locationSoi(points, m, S);
  dets.forEach((d, b) => {
    if (d.scores.length > 0 && !d.locations) throw new Error('predictMasks: detections carry no locations (make them with postprocess)');
    for (let i = 0; i < d.scores.length; i++) {
      const loc = d.locations![i];
      const r = b * N + i;
      rows[r] = b * L + loc;
      centers[2 * r] = points.data[5 * loc];
      centers[2 * r + 1] = points.data[5 * loc + 1];
      soi[r] = levelSoi[loc];
    }
  });
  const logits = tf.tidy(() => {
    const params = tf.gather(tf.reshape(out.controller!, [B * L, P]), tf.tensor1d(rows, 'int32')) as tf.Tensor2D;
    return dynamicMaskHead(out.maskFeats!, params, N, centers, soi, MASK_FEATURE_STRIDE, m);
  });
  const cut = Math.log(m.threshold / (1 - m.threshold));
  const result: Uint8Array[][] = [];
  try {
    // One image at a time: N masks at S × S in floats is the peak, not B·N.
    for (let b = 0; b < B; b++) {
      const n = dets[b].scores.length;
      if (n === 0) {
        result.push([]);
        continue;
      }
      const inside = tf.tidy(() => tf.cast(tf.greater(resizeBilinear(tf.slice(logits, [b * N, 0, 0], [n, -1, -1]), S, S), cut), 'int32'));
      const data = await inside.data() as Int32Array;
      inside.dispose();
      result.push(Array.from({ length: n }, (_, i) => Uint8Array.from(data.subarray(i * S * S, (i + 1) * S * S))));
    }
  } finally {
    logits.dispose();
  }
  return result;
}

/**
 * A view mask (S × S, row-major) in the original image's pixels as COCO
 * compressed RLE. `back` maps the view to the original (the view's
 * `inverse()`); each original pixel takes the view pixel its centre lands in.
 */
export function maskToOriginal(mask: Uint8Array, back: GeometricTransform, width: number, height: number): Rle {
  if (back.outWidth !== width || back.outHeight !== height) {
    throw new Error(`maskToOriginal: the transform maps to ${back.outWidth}×${back.outHeight}, the image is ${width}×${height}`);
  }
  const orig = back.applyMask({ data: mask, width: back.inWidth, height: back.inHeight });
  return rleToJson(encodeMask(orig.data, height, width));
}
