// CondInst's controller (Tian et al. 2020, §3.1): one conv on the box tower,
// shared by every level like the rest of the head, giving each location the
// P parameters of its instance's dynamic mask head. B images, F channels,
// h the level's side, P = dynamicParamCount (169 for the reference sizes):
//   box tower   [B, h, h, F]
//   controller  conv3x3 F→P (bias), N(0, 0.01) like the other head outputs  [B, h, h, P]
// Flattened over levels like the box outputs: [B, L, P]; training and mask
// inference only ever read a few rows of it, so they use `controllerRows`.
//
// The P numbers of one location, AdelaiDet's `parse_dynamic_params` order:
// the weights of layer 1, 2, …, n, then the biases of layer 1, 2, …, n; a
// layer's weights row-major [out, in] (a 1×1 conv's [out, in, 1, 1]).
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from '../config.js';
import { conv } from '../ops.js';
import { matMul2d } from './matmul.js';
import { type ParamSpec, type Params, convSpecs, param } from '../params.js';
import { type MaskConfig, dynamicParamCount } from './mask-config.js';

export function controllerSpecs(cfg: ModelConfig, m: MaskConfig): ParamSpec[] {
  return convSpecs('head.controller', 3, cfg.fpn.channels, dynamicParamCount(m), 'head', { kind: 'normal', std: 0.01 }, true);
}

/** The controller on one level's box tower: [B, h, h, F] → [B, h, h, P]. */
export function controllerLevel(params: Params, boxTower: tf.Tensor4D): tf.Tensor4D {
  return conv(boxTower, param(params, 'head.controller.weight'), 1, param(params, 'head.controller.bias'));
}

/**
 * The controller at chosen locations only: rows [R] = b·L + location (L
 * over all levels, P3 first), or B·L for a padding slot (which gets the
 * bias alone). The same numbers as `controllerLevel` there — each location's
 * 3×3 neighbourhood of the zero-padded box tower (its im2col row [9·F],
 * ky, kx, channel; `patchRows`) times the weights [9·F, P] — but only R rows of work:
 * the loss and the masks need a few dozen locations an image, not all L,
 * and the all-location conv was a third of a train step's added time.
 *   boxTowers[l] [B, h_l, w_l, F] → [R, P]
 */
export function controllerRows(params: Params, boxTowers: tf.Tensor4D[], rows: Int32Array): tf.Tensor2D {
  return tf.tidy(() => {
    const F = boxTowers[0].shape[3];
    const w = param<tf.Rank.R4>(params, 'head.controller.weight');
    const P = w.shape[3];
    return tf.add(matMul2d(patchRows(boxTowers, rows), tf.reshape(w, [9 * F, P]) as tf.Tensor2D), param(params, 'head.controller.bias')) as tf.Tensor2D;
  });
}

/**
 * The im2col rows [R, 9·F] of `rows` (as controllerRows; B·L gives zeros):
 * each location's 3×3 neighbourhood (ky, kx, channel), zero outside the
 * tower. Its gradient adds each row back into the towers. Both are copies in
 * JavaScript over the backend's memory: as tensor ops (pad, concat, gather,
 * and scatter, split, slice back) the same copies took 60–100 ms of a train
 * step on wasm, whose GatherV2 alone took 20–35 ms for 3,240 rows of 64.
 */
export function patchRows(boxTowers: tf.Tensor4D[], rows: Int32Array): tf.Tensor2D {
  const B = boxTowers[0].shape[0];
  const F = boxTowers[0].shape[3];
  const sides = boxTowers.map((t) => [t.shape[1], t.shape[2]]);
  const L = sides.reduce((n, [h, w]) => n + h * w, 0);
  // Per row and tap: the level and the element offset of its F channels, or −1 (zero).
  const level = new Int32Array(rows.length * 9).fill(-1);
  const at = new Int32Array(rows.length * 9);
  rows.forEach((row, r) => {
    if (!(Number.isInteger(row) && row >= 0 && row <= B * L)) throw new Error(`controller rows: ${row} is not a location of ${B} images × ${L} (nor the padding row ${B * L})`);
    if (row === B * L) return;
    const b = Math.floor(row / L);
    let loc = row % L;
    let l = 0;
    while (loc >= sides[l][0] * sides[l][1]) loc -= sides[l][0] * sides[l][1], l++;
    const [h, w] = sides[l];
    const i = Math.floor(loc / w), j = loc % w;
    for (let dy = -1; dy <= 1; dy++) {
      for (let dx = -1; dx <= 1; dx++) {
        const y = i + dy, x = j + dx;
        if (y < 0 || y >= h || x < 0 || x >= w) continue;
        const k = r * 9 + (dy + 1) * 3 + dx + 1;
        level[k] = l;
        at[k] = ((b * h + y) * w + x) * F;
      }
    }
  });
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const towers = args.slice(0, boxTowers.length).map((t) => (t as tf.Tensor).dataSync() as Float32Array);
    const out = new Float32Array(rows.length * 9 * F);
    for (let k = 0; k < level.length; k++) if (level[k] >= 0) out.set(towers[level[k]].subarray(at[k], at[k] + F), k * F);
    return {
      value: tf.tensor2d(out, [rows.length, 9 * F]),
      gradFunc: (dy: tf.Tensor) => {
        const g = dy.dataSync() as Float32Array;
        const grads = boxTowers.map((t) => new Float32Array(t.size));
        for (let k = 0; k < level.length; k++) {
          if (level[k] < 0) continue;
          const d = grads[level[k]];
          for (let c = 0; c < F; c++) d[at[k] + c] += g[k * F + c];
        }
        return grads.map((d, l) => tf.tensor4d(d, boxTowers[l].shape));
      },
    };
  });
  return f(...boxTowers) as tf.Tensor2D;
}
