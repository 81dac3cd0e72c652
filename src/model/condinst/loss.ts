// The CondInst mask loss: the controller's parameters at the chosen
// positives, the dynamic head over the mask features, the logits upsampled
// from the features' stride 8 to outStride, sigmoid, dice against the
// sampled ground truth. B images, L locations, P parameters, N slots,
// h×w the mask features' side, Hm×Wm = S/outStride:
//   box towers → the controller at the slots' locations [B·N, P] (controller.ts)
//   logits     [B·N, h, w] → bilinear → [B·N, Hm, Wm] → σ → dice (mask-targets.ts, dice.ts)
import * as tf from '@tensorflow/tfjs-core';
import { diceLoss } from './dice.js';
import { dynamicMaskHead, resizeBilinear } from './dynamic-head.js';
import type { MaskConfig } from './mask-config.js';
import type { MaskTargets } from './mask-targets.js';
import type { Params } from '../params.js';
import { controllerRows } from './controller.js';

/** Stride of the mask features: P3's. */
export const MASK_FEATURE_STRIDE = 8;

/**
 * The dice term (unweighted), a scalar the caller disposes. Only the real
 * slots run (the padding slots would be 40 % of the rows of a typical batch,
 * weighted out anyway); with none, one padding slot at weight 0 keeps the
 * mask parts in the graph (a zero gradient, not a missing one).
 */
export function maskLoss(weights: Params, out: { boxTowers: tf.Tensor4D[]; maskFeats: tf.Tensor4D }, t: MaskTargets, m: MaskConfig): tf.Scalar {
  const B = out.maskFeats.shape[0];
  const L = out.boxTowers.reduce((n, x) => n + x.shape[1] * x.shape[2], 0);
  if (B !== t.B || L !== t.L) throw new Error(`mask targets are for [${t.B}, ${t.L}] but the outputs are [${B}, ${L}]`);
  const slots: number[] = [];
  t.valid.forEach((v, r) => v && slots.push(r));
  if (slots.length === 0) slots.push(0);
  const R = slots.length;
  const n = t.Hm * t.Wm;
  const rows = new Int32Array(R), images = new Int32Array(R), centers = new Float32Array(2 * R), soi = new Float32Array(R);
  const valid = new Float32Array(R), masks = new Float32Array(R * n);
  slots.forEach((r, k) => {
    rows[k] = t.rows[r];
    images[k] = Math.floor(r / t.N);
    centers[2 * k] = t.centers[2 * r];
    centers[2 * k + 1] = t.centers[2 * r + 1];
    soi[k] = t.soi[r];
    valid[k] = t.valid[r];
    masks.set(t.masks.subarray(r * n, (r + 1) * n), k * n);
  });
  return tf.tidy(() => {
    const params = controllerRows(weights, out.boxTowers, rows);
    const logits = dynamicMaskHead(out.maskFeats, params, images, centers, soi, MASK_FEATURE_STRIDE, m);
    const up = resizeBilinear(logits, t.Hm, t.Wm);
    const probs = tf.reshape(sigmoid(up), [R, n]) as tf.Tensor2D;
    return diceLoss(probs, tf.tensor2d(masks, [R, n]), valid);
  });
}

/**
 * The FCOS terms plus the weighted dice term, for a trainer's step:
 * total' = total + lossWeight · mask. Scalars are the caller's to dispose.
 */
export function addMaskLoss(
  weights: Params, out: { boxTowers?: tf.Tensor4D[]; maskFeats?: tf.Tensor4D }, total: tf.Scalar, t: MaskTargets, m: MaskConfig,
): { total: tf.Scalar; mask: tf.Scalar } {
  if (!out.boxTowers || !out.maskFeats) throw new Error('mask targets were given but the model has no mask branch (its config has no `mask` block)');
  const mask = maskLoss(weights, { boxTowers: out.boxTowers, maskFeats: out.maskFeats }, t, m);
  return { total: tf.tidy(() => tf.add(total, tf.mul(mask, m.lossWeight)) as tf.Scalar), mask };
}

/**
 * σ(x) with its gradient as dy·(y − y²), every op on equal shapes: tfjs's own
 * gradient computes 1 − y as a scalar broadcast, which the wasm backend runs
 * in a slow generic loop (20 ms for the 204 × 32 × 32 mask probabilities of
 * a train step, against about 1 ms).
 */
function sigmoid(x: tf.Tensor3D): tf.Tensor3D {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const y = tf.sigmoid(args[0] as tf.Tensor);
    (args[1] as tf.GradSaveFunc)([y]);
    return { value: y, gradFunc: (dy: tf.Tensor, [ys]: tf.Tensor[]) => tf.mul(dy, tf.sub(ys, tf.square(ys))) };
  });
  return f(x) as tf.Tensor3D;
}
