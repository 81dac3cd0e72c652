// Dice loss of CondInst (AdelaiDet `dice_coefficient`), per instance over
// its mask pixels, R instances of n pixels each:
//   probs [R, n] in [0, 1], targets [R, n] in {0, 1}, weights [R] (0 = padding)
//   dice_r = 1 − 2·Σ p·t / (Σ p² + Σ t² + ε),  ε = 1e-5
//   loss = Σ_r w_r·dice_r / max(Σ_r w_r, 1)
import * as tf from '@tensorflow/tfjs-core';

export const DICE_EPS = 1e-5;

/** dice_r per row, [R]. */
export function diceLossPerInstance(probs: tf.Tensor2D, targets: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => {
    const inter = tf.sum(tf.mul(probs, targets), 1);
    const union = tf.add(tf.add(tf.sum(tf.square(probs), 1), tf.sum(tf.square(targets), 1)), DICE_EPS);
    return tf.sub(1, tf.div(tf.mul(2, inter), union)) as tf.Tensor1D;
  });
}

/** The weighted mean over instances (a scalar; 0 when no instance has weight). */
export function diceLoss(probs: tf.Tensor2D, targets: tf.Tensor2D, weights: Float32Array): tf.Scalar {
  const total = weights.reduce((s, v) => s + v, 0);
  return tf.tidy(() => tf.div(tf.sum(tf.mul(diceLossPerInstance(probs, targets), tf.tensor1d(weights))), Math.max(total, 1)) as tf.Scalar);
}
