// CondInst's dynamic mask head (Tian et al. 2020, §3.1; AdelaiDet
// `dynamic_mask_head.py`): for each instance, a tiny network whose weights
// the controller generated runs over the shared mask features, with the
// pixels' coordinates relative to the instance's location as two more inputs.
// B images, N instance slots per image, R = B·N, C mask channels, h×w the
// mask features' side (stride s = 8), P parameters per instance, D hidden width:
//   feats    [B, h, w, C]
//   params   [B·N, P]       (controller.ts's order)
//   centers  [B·N, 2]       the instance's location (x, y), input pixels
//   soi      [B·N]          its level's size of interest, input pixels
//   rel      [R, h·w, 2]    ((cx − x)/soi, (cy − y)/soi) at each cell's location
//                           (j·s + ⌊s/2⌋, i·s + ⌊s/2⌋), as in points.ts
//   layer 1  [R, h·w, D] = ReLU([rel ⊕ feats] · W1ᵀ + b1)
//   …        [R, h·w, D]
//   layer n  [R, h·w, 1]    → logits [R, h, w]
// Layer 1's feature half is one matmul per image for all of its instances
// ([h·w, C] × [C, N·D]), so the mask features are never copied per instance.
import * as tf from '@tensorflow/tfjs-core';
import type { MaskConfig } from './mask-config.js';
import { splitDynamicParams } from './controller.js';

/** Relative coordinates [R, h·w, 2] of every cell to each instance, as plain floats (no gradient flows into them). */
export function relativeCoords(centers: ArrayLike<number>, soi: ArrayLike<number>, h: number, w: number, stride: number): Float32Array {
  const R = soi.length;
  const half = Math.floor(stride / 2);
  const out = new Float32Array(R * h * w * 2);
  for (let r = 0; r < R; r++) {
    const cx = centers[2 * r], cy = centers[2 * r + 1], s = soi[r];
    let o = r * h * w * 2;
    for (let i = 0; i < h; i++) {
      const y = i * stride + half;
      for (let j = 0; j < w; j++, o += 2) {
        out[o] = (cx - (j * stride + half)) / s;
        out[o + 1] = (cy - y) / s;
      }
    }
  }
  return out;
}

/**
 * Mask logits [B·N, h, w] of N instances per image. `params` row b·N + n
 * belongs to image b. Padding rows compute garbage the caller weighs out.
 */
export function dynamicMaskHead(
  feats: tf.Tensor4D, params: tf.Tensor2D, N: number,
  centers: ArrayLike<number>, soi: ArrayLike<number>, stride: number, m: MaskConfig,
): tf.Tensor3D {
  const [B, h, w, C] = feats.shape;
  const R = B * N;
  if (params.shape[0] !== R) throw new Error(`dynamicMaskHead: ${params.shape[0]} parameter rows for ${B} images × ${N} instances`);
  if (C !== m.maskChannels) throw new Error(`dynamicMaskHead: mask features have ${C} channels, the config says ${m.maskChannels}`);
  return tf.tidy(() => {
    const { weights, biases } = splitDynamicParams(params, m);
    const D = weights[0].shape[1];
    const rel = tf.tensor3d(relativeCoords(centers, soi, h, w, stride), [R, h * w, 2]);
    const wRel = tf.slice(weights[0], [0, 0, 0], [R, D, 2]);
    const wFeat = tf.reshape(tf.slice(weights[0], [0, 0, 2], [R, D, C]), [B, N * D, C]);
    const fromFeats = tf.matMul(tf.reshape(feats, [B, h * w, C]), wFeat, false, true); // [B, h·w, N·D]
    const perInstance = tf.reshape(tf.transpose(tf.reshape(fromFeats, [B, h * w, N, D]), [0, 2, 1, 3]), [R, h * w, D]);
    let x: tf.Tensor3D = tf.add(tf.add(perInstance, tf.matMul(rel, wRel, false, true)), biases[0]);
    for (let l = 1; l < weights.length; l++) {
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
 * fixed interpolation matrices: differentiable on every backend (the wasm
 * backend has no ResizeBilinearGrad kernel to rely on).
 */
export function resizeBilinear(x: tf.Tensor3D, outH: number, outW: number): tf.Tensor3D {
  const [R, h, w] = x.shape;
  return tf.tidy(() => {
    const mw = tf.tensor2d(interpolationMatrix(w, outW), [outW, w]);
    const mh = tf.tensor2d(interpolationMatrix(h, outH), [outH, h]);
    const cols = tf.matMul(tf.reshape(x, [R * h, w]), mw, false, true); // [R·h, outW]
    const t = tf.reshape(tf.transpose(tf.reshape(cols, [R, h, outW]), [0, 2, 1]), [R * outW, h]);
    const rows = tf.matMul(t, mh, false, true); // [R·outW, outH]
    return tf.transpose(tf.reshape(rows, [R, outW, outH]), [0, 2, 1]) as tf.Tensor3D;
  });
}
