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
  // The fused kernel adds the bias in the convolution's output pass.
  return bias ? tf.fused.conv2d({ x, filter: w, strides: stride, pad, bias }) : tf.conv2d(x, w, stride, pad);
}

/**
 * GroupNorm: statistics per sample and group over (H, W, C/G), biased
 * variance (PyTorch's), then a per-channel affine.
 *
 * Written for speed on wasm, where a broadcast over [B, H·W, G, C/G] runs
 * several times slower than one over [B, 1, 1, C]: group statistics are
 * taken from per-channel sums (small [B, C] tensors), then folded into one
 * per-sample, per-channel scale and shift, y = x·a + b. The gradient is the
 * closed form, again through per-channel coefficients:
 *   dx = dy·(r·γ) + x·(−r²·M2) + (r²·μ·M2 − r·M1),
 *   M1 = mean_g(γ·Σdy), M2 = mean_g(γ·Σdy·x̂), x̂ = (x − μ)·r, r = 1/sqrt(var + eps).
 */
export function groupNorm(x: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D, groups: number, eps: number): tf.Tensor4D {
  return groupNormFn(groups, eps)(x, gamma, beta) as tf.Tensor4D;
}

type GroupNormFn = (x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor) => tf.Tensor;
const groupNormFns = new Map<string, GroupNormFn>();

// Constant helper tensors, made once per shape and kept for the process
// (a handful of small tensors: one per distinct batch×size and channel count).
const constants = new Map<string, tf.Tensor>();

function constant(key: string, make: () => tf.Tensor): tf.Tensor {
  let c = constants.get(key);
  if (!c || c.isDisposed) {
    c = tf.keep(make());
    constants.set(key, c);
  }
  return c;
}

/** Σ over H and W per sample and channel, [B, H, W, C] → [B, C]; a matmul with ones beats Sum's transposing reduction on wasm. */
function channelSums(x: tf.Tensor): tf.Tensor {
  const [b, h, w, c] = x.shape;
  const ones = constant(`ones ${b} ${h * w}`, () => tf.ones([b, 1, h * w]));
  return tf.reshape(tf.matMul(ones, tf.reshape(x, [b, h * w, c])), [b, c]);
}

/**
 * Per-group mean of a per-channel [B, C] tensor, expanded back to
 * [B, 1, 1, C]: one matmul with the block matrix that averages each group's
 * channels (1/n inside a group, 0 elsewhere).
 */
function groupMeanPerChannel(perChannel: tf.Tensor, groups: number, n: number): tf.Tensor {
  const [b, c] = perChannel.shape;
  const cg = c / groups;
  const avg = constant(`group-mean ${c} ${groups} ${n}`, () => {
    const m = new Float32Array(c * c);
    for (let i = 0; i < c; i++) for (let j = 0; j < c; j++) if (Math.floor(i / cg) === Math.floor(j / cg)) m[i * c + j] = 1 / n;
    return tf.tensor2d(m, [c, c]);
  });
  return tf.reshape(tf.matMul(perChannel, avg), [b, 1, 1, c]);
}

function groupNormFn(groups: number, eps: number): GroupNormFn {
  const key = `${groups}/${eps}`;
  let fn = groupNormFns.get(key);
  if (fn) return fn;
  fn = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [x, gamma, beta] = args as tf.Tensor[];
    const save = args[3] as tf.GradSaveFunc;
    const [, h, w, c] = x.shape;
    const n = h * w * (c / groups);
    const mean = groupMeanPerChannel(channelSums(x), groups, n); // [B, 1, 1, C]
    const centred = tf.sub(x, mean);
    const variance = groupMeanPerChannel(channelSums(tf.square(centred)), groups, n);
    const r = tf.rsqrt(tf.add(variance, eps)); // [B, 1, 1, C]
    const value = tf.add(tf.mul(centred, tf.mul(r, gamma)), beta);
    save([x, gamma, mean, r]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, g, mu, rs] = saved;
        const b = xs.shape[0];
        const sumDy = channelSums(dy); // [B, C]
        const sumDyX = channelSums(tf.mul(dy, xs));
        const mu2 = tf.reshape(mu, [b, c]);
        const r2 = tf.reshape(rs, [b, c]);
        const sumDyXhat = tf.mul(tf.sub(sumDyX, tf.mul(mu2, sumDy)), r2); // Σ dy·x̂ per channel
        const m1 = groupMeanPerChannel(tf.mul(sumDy, g), groups, n);
        const m2 = groupMeanPerChannel(tf.mul(sumDyXhat, g), groups, n);
        const a = tf.mul(rs, g);
        const rr = tf.square(rs);
        const coefX = tf.neg(tf.mul(rr, m2));
        const shift = tf.sub(tf.mul(tf.mul(rr, mu), m2), tf.mul(rs, m1));
        const dx = tf.add(tf.add(tf.mul(dy, a), tf.mul(xs, coefX)), shift);
        return [dx, tf.sum(sumDyXhat, 0), tf.sum(sumDy, 0)];
      },
    };
  }) as unknown as GroupNormFn;
  groupNormFns.set(key, fn);
  return fn;
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
