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

/** The dice term (unweighted), a scalar the caller disposes. */
export function maskLoss(weights: Params, out: { boxTowers: tf.Tensor4D[]; maskFeats: tf.Tensor4D }, t: MaskTargets, m: MaskConfig): tf.Scalar {
  const B = out.maskFeats.shape[0];
  const L = out.boxTowers.reduce((n, x) => n + x.shape[1] * x.shape[2], 0);
  if (B !== t.B || L !== t.L) throw new Error(`mask targets are for [${t.B}, ${t.L}] but the outputs are [${B}, ${L}]`);
  return tf.tidy(() => {
    const params = controllerRows(weights, out.boxTowers, t.rows);
    const logits = dynamicMaskHead(out.maskFeats, params, t.N, t.centers, t.soi, MASK_FEATURE_STRIDE, m);
    const up = resizeBilinear(logits, t.Hm, t.Wm);
    const probs = tf.reshape(tf.sigmoid(up), [B * t.N, t.Hm * t.Wm]) as tf.Tensor2D;
    return diceLoss(probs, tf.tensor2d(t.masks, [B * t.N, t.Hm * t.Wm]), t.valid);
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
