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
import { type ParamSpec, type Params, convSpecs, param } from '../params.js';
import { type MaskConfig, dynamicLayerShapes, dynamicParamCount } from './mask-config.js';

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
 * ky, kx, channel) times the weights [9·F, P] — but only R rows of work:
 * the loss and the masks need a few dozen locations an image, not all L,
 * and the all-location conv was a third of a train step's added time.
 *   boxTowers[l] [B, h_l, w_l, F] → [R, P]
 */
export function controllerRows(params: Params, boxTowers: tf.Tensor4D[], rows: Int32Array): tf.Tensor2D {
  const B = boxTowers[0].shape[0];
  const F = boxTowers[0].shape[3];
  const sides = boxTowers.map((t) => [t.shape[1], t.shape[2]]);
  const L = sides.reduce((n, [h, w]) => n + h * w, 0);
  // Table rows: every level's padded tower, flattened, then one zero row for padding slots.
  const levelBase: number[] = [];
  let base = 0;
  for (const [h, w] of sides) {
    levelBase.push(base);
    base += B * (h + 2) * (w + 2);
  }
  const zeroRow = base;
  const idx = new Int32Array(rows.length * 9).fill(zeroRow);
  rows.forEach((row, r) => {
    if (row >= B * L) return;
    const b = Math.floor(row / L);
    let loc = row % L;
    let l = 0;
    while (loc >= sides[l][0] * sides[l][1]) loc -= sides[l][0] * sides[l][1], l++;
    const [h, w] = sides[l];
    const i = Math.floor(loc / w), j = loc % w;
    for (let dy = 0; dy < 3; dy++) {
      for (let dx = 0; dx < 3; dx++) idx[r * 9 + dy * 3 + dx] = levelBase[l] + (b * (h + 2) + i + dy) * (w + 2) + j + dx;
    }
  });
  return tf.tidy(() => {
    const table = tf.concat([
      ...boxTowers.map((t) => tf.reshape(tf.pad(t, [[0, 0], [1, 1], [1, 1], [0, 0]]), [-1, F])),
      tf.zeros([1, F]),
    ], 0) as tf.Tensor2D;
    const patches = tf.reshape(gatherRows(table, idx), [rows.length, 9 * F]);
    const w = param<tf.Rank.R4>(params, 'head.controller.weight');
    const P = w.shape[3];
    return tf.add(tf.matMul(patches, tf.reshape(w, [9 * F, P])), param(params, 'head.controller.bias')) as tf.Tensor2D;
  });
}

/**
 * Rows `rows` of x [n, C], with gather's gradient written as a scatter
 * (summing repeated rows): the wasm backend has no UnsortedSegmentSum,
 * which tfjs's own gather gradient needs.
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

export interface DynamicLayers {
  /** Per layer [R, out, in]. */
  weights: tf.Tensor3D[];
  /** Per layer [R, 1, out]. */
  biases: tf.Tensor3D[];
}

/** R rows of P parameters [R, P] → each dynamic layer's weights and biases. */
export function splitDynamicParams(p: tf.Tensor2D, m: MaskConfig): DynamicLayers {
  const shapes = dynamicLayerShapes(m);
  const R = p.shape[0];
  if (p.shape[1] !== dynamicParamCount(m)) throw new Error(`dynamic parameters are [${p.shape}] but the mask config needs ${dynamicParamCount(m)} per instance`);
  const sizes = [...shapes.map(([i, o]) => i * o), ...shapes.map(([, o]) => o)];
  const parts = tf.split(p, sizes, 1);
  return {
    weights: shapes.map(([i, o], l) => tf.reshape(parts[l], [R, o, i]) as tf.Tensor3D),
    biases: shapes.map(([, o], l) => tf.reshape(parts[shapes.length + l], [R, 1, o]) as tf.Tensor3D),
  };
}
