// The CondInst mask loss: the controller's parameters at the chosen
// positives, the dynamic head over the mask features, the logits upsampled
// from the features' stride 8 to outStride, sigmoid, dice against the
// sampled ground truth. B images, L locations, P parameters, N slots,
// h×w the mask features' side, Hm×Wm = S/outStride:
//   controller [B, L, P] → the slots' rows [B·N, P] (padding: a zero row)
//   logits     [B·N, h, w] → bilinear → [B·N, Hm, Wm] → σ → dice (mask-targets.ts, dice.ts)
import * as tf from '@tensorflow/tfjs-core';
import { diceLoss } from './dice.js';
import { dynamicMaskHead, resizeBilinear } from './dynamic-head.js';
import type { MaskConfig } from './mask-config.js';
import type { MaskTargets } from './mask-targets.js';

/** Stride of the mask features: P3's. */
export const MASK_FEATURE_STRIDE = 8;

/**
 * Rows `rows` of x [n, P], with gather's gradient written as a scatter:
 * the wasm backend has no UnsortedSegmentSum, which tfjs's own gather
 * gradient needs. A one-hot matmul did the same at a tenth of the train
 * step. Rows other than the padding row n − 1 must be distinct (they are:
 * one slot per location), so scattering never has to add duplicates.
 */
export function gatherRows(x: tf.Tensor2D, rows: Int32Array): tf.Tensor2D {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const input = args[0] as tf.Tensor2D;
    const shape = input.shape;
    return {
      value: tf.tidy(() => tf.gather(input, tf.tensor1d(rows, 'int32'))),
      // The indices are made again from the plain array: a tensor made in the forward pass may be gone by now.
      gradFunc: (dy: tf.Tensor) => tf.tidy(() => tf.scatterND(tf.tensor2d(rows, [rows.length, 1], 'int32'), dy, shape)),
    };
  });
  return f(x) as tf.Tensor2D;
}

/** The dice term (unweighted), a scalar the caller disposes. */
export function maskLoss(out: { controller: tf.Tensor3D; maskFeats: tf.Tensor4D }, t: MaskTargets, m: MaskConfig): tf.Scalar {
  const [B, L, P] = out.controller.shape;
  if (B !== t.B || L !== t.L) throw new Error(`mask targets are for [${t.B}, ${t.L}] but the controller outputs are [${B}, ${L}]`);
  return tf.tidy(() => {
    const padded = tf.concat([tf.reshape(out.controller, [B * L, P]), tf.zeros([1, P])], 0) as tf.Tensor2D;
    const params = gatherRows(padded, t.rows);
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
  out: { controller?: tf.Tensor3D; maskFeats?: tf.Tensor4D }, total: tf.Scalar, t: MaskTargets, m: MaskConfig,
): { total: tf.Scalar; mask: tf.Scalar } {
  if (!out.controller || !out.maskFeats) throw new Error('mask targets were given but the model has no mask branch (its config has no `mask` block)');
  const mask = maskLoss({ controller: out.controller, maskFeats: out.maskFeats }, t, m);
  return { total: tf.tidy(() => tf.add(total, tf.mul(mask, m.lossWeight)) as tf.Scalar), mask };
}
