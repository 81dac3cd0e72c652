// A matmul for the wasm backend's fast path, gradients included.
import * as tf from '@tensorflow/tfjs-core';

/**
 * a [m, k] × b [k, n] whose gradients are untransposed products too
 * (dA = dY · bᵀ, dB = aᵀ · dY with the transposes made explicitly): tfjs's
 * own matMul gradient passes transpose flags, which send the wasm backend
 * from XNNPACK to a scalar loop — the controller's two gradient products
 * took 73 and 68 ms that way, its forward product 5 ms.
 */
export function matMul2d(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [x, y] = args as tf.Tensor2D[];
    (args[2] as tf.GradSaveFunc)([x, y]);
    return {
      value: tf.matMul(x, y),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, ys] = saved as tf.Tensor2D[];
        return [tf.matMul(dy as tf.Tensor2D, tf.transpose(ys)), tf.matMul(tf.transpose(xs), dy as tf.Tensor2D)];
      },
    };
  });
  return f(a, b) as tf.Tensor2D;
}
