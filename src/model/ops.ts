// The few operations the detector is built from, in one file so the backend
// engineer can tune them in one place (keep test/parity.test.ts green).
// NHWC everywhere, weights HWIO:
//   conv      x [B, H, W, Cin], w [k, k, Cin, Cout] → [B, ceil(H/s), ceil(W/s), Cout]
//   groupNorm x [B, H, W, C], gamma/beta [C] → same shape
//   up2       x [B, h, w, C] → [B, 2h, 2w, C]
import * as tf from '@tensorflow/tfjs-core';

/**
 * k×k convolution padding (k−1)/2 on *every* side, like PyTorch's `padding=1`.
 * tfjs 'same' pads 0 before and 1 after for stride 2 on an even input, which
 * shifts every feature by one pixel against the reference.
 */
export function conv(x: tf.Tensor4D, w: tf.Tensor4D, stride: number, bias?: tf.Tensor1D): tf.Tensor4D {
  const k = w.shape[0];
  const pad = (k - 1) / 2;
  const y = tf.conv2d(x, w, stride, pad);
  return bias ? tf.add(y, bias) : y;
}

/**
 * GroupNorm: statistics per sample and group over (H, W, C/G), biased
 * variance (PyTorch's), then a per-channel affine.
 */
export function groupNorm(x: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D, groups: number, eps: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [b, h, w, c] = x.shape;
    const g = tf.reshape(x, [b, h * w, groups, c / groups]);
    const { mean, variance } = tf.moments(g, [1, 3], true);
    const normed = tf.mul(tf.sub(g, mean), tf.rsqrt(tf.add(variance, eps)));
    return tf.add(tf.mul(tf.reshape(normed, [b, h, w, c]), gamma), beta);
  });
}

/** Nearest ×2 upsampling, src = floor(dst/2) (PyTorch `interpolate(scale_factor=2)`). */
export function up2(x: tf.Tensor4D): tf.Tensor4D {
  const [, h, w] = x.shape;
  return tf.image.resizeNearestNeighbor(x, [2 * h, 2 * w], false, false);
}

export function relu<T extends tf.Tensor>(x: T): T {
  return tf.relu(x);
}

/** NHWC level → [B, H·W, C], rows in y-then-x order. */
export function flattenLevel(x: tf.Tensor4D): tf.Tensor3D {
  const [b, h, w, c] = x.shape;
  return tf.reshape(x, [b, h * w, c]);
}

/** conv (no bias) → GroupNorm → ReLU: the block of the backbone and the head towers. */
export function convGnRelu(
  x: tf.Tensor4D, w: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D, stride: number, groups: number, eps: number,
): tf.Tensor4D {
  return tf.tidy(() => tf.relu(groupNorm(conv(x, w, stride), gamma, beta, groups, eps)));
}
