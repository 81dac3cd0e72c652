// CondInst's dynamic mask head (Tian et al. 2020, §3.1; AdelaiDet
// `dynamic_mask_head.py`): for each instance, a tiny network whose weights
// the controller generated runs over the shared mask features, with the
// pixels' coordinates relative to the instance's location as two more inputs.
// B images, R instances (rows) of any images, C mask channels, h×w the mask
// features' side (stride s = 8), P parameters per instance, D hidden width:
//   feats    [B, h, w, C]
//   params   [R, P]         (controller.ts's order: all weights [out, in] row-major, then all biases)
//   images   [R]            the image of each row
//   centers  [R, 2]         the instance's location (x, y), input pixels
//   soi      [R]            its level's size of interest, input pixels
//   rel      ((cx − x)/soi, (cy − y)/soi) at each cell's location (j·s + ⌊s/2⌋, i·s + ⌊s/2⌋), as in points.ts
//   layer 1  [R, h·w, D] = ReLU([rel ⊕ feats] · W1ᵀ + b1)
//   …        [R, h·w, D]
//   layer n  [R, h·w, 1]    → logits [R, h, w]
//
// Layer 1 is one untransposed 2-D product for every row of the batch, which
// the wasm backend hands to XNNPACK:
//   [h·w, B·C + 3]  (every image's features side by side, then x, y, 1)
//   × [B·C + 3, R·D] (row r's feature weights in its image's C rows, zeros
//                     elsewhere; −W1_rel/soi on x and y; b1 + W1_rel·centre/soi on 1)
//   = [h·w, R·D]
// because rel is affine in the cell's (x, y). The zeros cost B× the
// multiply-adds of the feature half, and it still runs ~10× faster than the
// R batched products it replaces: wasm runs any batched or transposed matmul
// in a scalar loop. Layers 2..n, with a different matrix in every row and
// nothing shared to fold into one product, stay R batched products.
import * as tf from '@tensorflow/tfjs-core';
import { type MaskConfig, dynamicLayerShapes, dynamicParamCount } from './mask-config.js';
import { matMul2d } from './matmul.js';

/** Mask logits [R, h, w]: row r runs on image images[r]'s features. */
export function dynamicMaskHead(
  feats: tf.Tensor4D, params: tf.Tensor2D, images: ArrayLike<number>,
  centers: ArrayLike<number>, soi: ArrayLike<number>, stride: number, m: MaskConfig,
): tf.Tensor3D {
  const [B, h, w, C] = feats.shape;
  const R = params.shape[0];
  const hw = h * w;
  if (images.length !== R || soi.length !== R || centers.length !== 2 * R) {
    throw new Error(`dynamicMaskHead: ${R} parameter rows but ${images.length} images, ${soi.length} sizes and ${centers.length / 2} centres`);
  }
  if (C !== m.maskChannels) throw new Error(`dynamicMaskHead: mask features have ${C} channels, the config says ${m.maskChannels}`);
  if (params.shape[1] !== dynamicParamCount(m)) throw new Error(`dynamicMaskHead: parameters are [${params.shape}] but the mask config needs ${dynamicParamCount(m)} per instance`);
  for (const b of Array.from(images)) if (!(Number.isInteger(b) && b >= 0 && b < B)) throw new Error(`dynamicMaskHead: image ${b} is not in the batch of ${B}`);
  const shapes = dynamicLayerShapes(m);
  const D = shapes[0][1];
  return tf.tidy(() => {
    const sizes = [...shapes.map(([i, o]) => i * o), ...shapes.map(([, o]) => o)];
    const parts = tf.split(params, sizes, 1);
    const weights = shapes.map(([i, o], l) => tf.reshape(parts[l], [R, o, i]) as tf.Tensor3D);
    const biases = shapes.map(([, o], l) => tf.reshape(parts[shapes.length + l], [R, 1, o]) as tf.Tensor3D);
    // Constants of the layer-1 product: which image each column belongs to, 1/soi, centre/soi, the cells' x, y.
    const own = new Float32Array(B * R * D);
    const invSoi = new Float32Array(R);
    const cxs = new Float32Array(R), cys = new Float32Array(R);
    for (let r = 0; r < R; r++) {
      own.fill(1, (images[r] * R + r) * D, (images[r] * R + r + 1) * D);
      invSoi[r] = 1 / soi[r];
      cxs[r] = centers[2 * r] / soi[r];
      cys[r] = centers[2 * r + 1] / soi[r];
    }
    const half = Math.floor(stride / 2);
    const cells = new Float32Array(hw * 3);
    for (let q = 0; q < hw; q++) cells.set([(q % w) * stride + half, Math.floor(q / w) * stride + half, 1], 3 * q);
    const w1 = weights[0]; // [R, D, C + 2]
    const wx = tf.squeeze(tf.slice(w1, [0, 0, 0], [R, D, 1]), [2]); // [R, D]
    const wy = tf.squeeze(tf.slice(w1, [0, 0, 1], [R, D, 1]), [2]);
    const col = (t: tf.Tensor) => tf.reshape(t, [1, R * D]);
    const perRow = (v: Float32Array) => tf.tensor2d(v, [R, 1]);
    const featRows = tf.mul(
      tf.reshape(tf.transpose(tf.slice(w1, [0, 0, 2], [R, D, C]), [2, 0, 1]), [1, C, R * D]),
      tf.tensor3d(own, [B, 1, R * D]),
    ); // [B, C, R·D]
    const block = tf.concat([
      tf.reshape(featRows, [B * C, R * D]),
      col(tf.neg(tf.mul(wx, perRow(invSoi)))),
      col(tf.neg(tf.mul(wy, perRow(invSoi)))),
      col(tf.add(tf.reshape(biases[0], [R, D]), tf.add(tf.mul(wx, perRow(cxs)), tf.mul(wy, perRow(cys))))),
    ], 0) as tf.Tensor2D; // [B·C + 3, R·D]
    const inputs = tf.concat([
      tf.reshape(tf.transpose(tf.reshape(feats, [B, hw, C]), [1, 0, 2]), [hw, B * C]),
      tf.tensor2d(cells, [hw, 3]),
    ], 1) as tf.Tensor2D; // [h·w, B·C + 3]
    const layer1 = matMul2d(inputs, block); // [h·w, R·D]
    let x = tf.transpose(tf.reshape(layer1, [hw, R, D]), [1, 0, 2]) as tf.Tensor3D; // [R, h·w, D]
    for (let l = 1; l < shapes.length; l++) {
      x = tf.relu(x);
      x = tf.add(tf.matMul(x, weights[l], false, true), biases[l]);
    }
    return tf.reshape(x, [R, h, w]) as tf.Tensor3D;
  });
}

/**
 * Bilinear interpolation matrix [outLen, inLen] for half-pixel centres
 * (src = (dst + 0.5)/f − 0.5, clamped to the edge; PyTorch's
 * `interpolate(align_corners=False)`, f = outLen/inLen). A value known at
 * the stride-s cell centres, sampled at the centres of the stride-s/f grid.
 */
export function interpolationMatrix(inLen: number, outLen: number): Float32Array {
  const f = outLen / inLen;
  const M = new Float32Array(outLen * inLen);
  for (let d = 0; d < outLen; d++) {
    const src = Math.min(Math.max((d + 0.5) / f - 0.5, 0), inLen - 1);
    const i0 = Math.floor(src);
    const i1 = Math.min(i0 + 1, inLen - 1);
    const t = src - i0;
    M[d * inLen + i0] += 1 - t;
    M[d * inLen + i1] += t;
  }
  return M;
}

/**
 * Bilinear resize of maps [R, h, w] → [R, outH, outW] as two matmuls with
 * fixed interpolation matrices, forward and backward: differentiable on
 * every backend (the wasm backend has no ResizeBilinearGrad kernel to rely
 * on), and every product an untransposed 2-D one, which wasm hands to
 * XNNPACK (a transposed operand takes its scalar loop, 10× slower here).
 */
export function resizeBilinear(x: tf.Tensor3D, outH: number, outW: number): tf.Tensor3D {
  const [R, h, w] = x.shape;
  const mw = interpolationMatrix(w, outW); // [outW, w]
  const mh = interpolationMatrix(h, outH); // [outH, h]
  const resize = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
    value: tf.tidy(() => separable(args[0] as tf.Tensor3D, transposed(mw, outW, w), transposed(mh, outH, h), outW, outH)),
    gradFunc: (dy: tf.Tensor) => tf.tidy(() => {
      // The adjoint: the same two products with the matrices transposed, in reverse order.
      const rows = separable(tf.transpose(dy as tf.Tensor3D, [0, 2, 1]), tf.tensor2d(mh, [outH, h]), tf.tensor2d(mw, [outW, w]), h, w);
      return tf.transpose(rows, [0, 2, 1]);
    }),
  }));
  return resize(x) as tf.Tensor3D;
}

/** [R, a, b] → ([R·a, b] × mb [b, b']) → transposed → ([R·b', a] × ma [a, a']) → [R, b', a']. */
function separable(x: tf.Tensor3D, mb: tf.Tensor2D, ma: tf.Tensor2D, bOut: number, aOut: number): tf.Tensor3D {
  const [R, a, b] = x.shape;
  const cols = tf.matMul(tf.reshape(x, [R * a, b]), mb); // [R·a, b']
  const t = tf.reshape(tf.transpose(tf.reshape(cols, [R, a, bOut]), [0, 2, 1]), [R * bOut, a]);
  return tf.transpose(tf.reshape(tf.matMul(t, ma), [R, bOut, aOut]), [0, 2, 1]) as tf.Tensor3D;
}

/** Mᵀ of a row-major [rows, cols] matrix, as a tensor [cols, rows]. */
function transposed(M: Float32Array, rows: number, cols: number): tf.Tensor2D {
  const T = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) T[j * rows + i] = M[i * cols + j];
  return tf.tensor2d(T, [cols, rows]);
}
