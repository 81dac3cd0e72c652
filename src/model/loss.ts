// FCOS losses. B images, L locations, K classes, N_pos = max(#positives, 1)
// over the whole batch, c* the centerness target:
//   cls [B, L, K] logits, box [B, L, 4] ltrb pixels, ctr [B, L, 1] logits
//   L_cls = Σ focal(cls, one-hot) / N_pos            (α 0.25, γ 2)
//   L_reg = Σ_pos c*·(1 − GIoU(pred, gt)) / max(Σ_pos c*, 1e-6)
//   L_ctr = Σ_pos BCE(ctr, c*) / N_pos
// Every term is a sum over all locations with negatives masked to zero,
// so there are no data-dependent shapes and no empty-batch special case.
import * as tf from '@tensorflow/tfjs-core';
import type { Points } from './points.js';
import type { Targets } from './targets.js';

export interface LossTerms {
  total: tf.Scalar;
  cls: tf.Scalar;
  reg: tf.Scalar;
  ctr: tf.Scalar;
}

export const FOCAL_ALPHA = 0.25;
export const FOCAL_GAMMA = 2;

/** Elementwise BCE with logits, max(x, 0) − x·t + log(1 + e^−|x|). */
export function bceWithLogits(x: tf.Tensor, t: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.add(tf.sub(tf.relu(x), tf.mul(x, t)), tf.log1p(tf.exp(tf.neg(tf.abs(x))))));
}

/** Elementwise sigmoid focal loss α_t (1 − p_t)^γ BCE (torchvision's). */
export function sigmoidFocal(x: tf.Tensor, t: tf.Tensor, alpha = FOCAL_ALPHA, gamma = FOCAL_GAMMA): tf.Tensor {
  return tf.tidy(() => {
    const p = tf.sigmoid(x);
    const ce = bceWithLogits(x, t);
    const oneMinusT = tf.sub(1, t);
    const pt = tf.add(tf.mul(p, t), tf.mul(tf.sub(1, p), oneMinusT));
    const mod = gamma === 2 ? tf.square(tf.sub(1, pt)) : tf.pow(tf.sub(1, pt), gamma);
    const alphaT = tf.add(tf.mul(alpha, t), tf.mul(1 - alpha, oneMinusT));
    return tf.mul(alphaT, tf.mul(ce, mod));
  });
}

/** 1 − GIoU of boxes [..., 4] x1y1x2y2, torchvision's `generalized_box_iou_loss` (eps 1e-7). */
export function giouLoss(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const [x1, y1, x2, y2] = tf.unstack(a, -1);
    const [gx1, gy1, gx2, gy2] = tf.unstack(b, -1);
    const iw = tf.relu(tf.sub(tf.minimum(x2, gx2), tf.maximum(x1, gx1)));
    const ih = tf.relu(tf.sub(tf.minimum(y2, gy2), tf.maximum(y1, gy1)));
    const inter = tf.mul(iw, ih);
    const areaA = tf.mul(tf.sub(x2, x1), tf.sub(y2, y1));
    const areaB = tf.mul(tf.sub(gx2, gx1), tf.sub(gy2, gy1));
    const union = tf.sub(tf.add(areaA, areaB), inter);
    const iou = tf.div(inter, tf.add(union, 1e-7));
    const cw = tf.sub(tf.maximum(x2, gx2), tf.minimum(x1, gx1));
    const ch = tf.sub(tf.maximum(y2, gy2), tf.minimum(y1, gy1));
    const areaC = tf.mul(cw, ch);
    const giou = tf.sub(iou, tf.div(tf.sub(areaC, union), tf.add(areaC, 1e-7)));
    return tf.sub(1, giou);
  });
}

/** The target tensors the loss needs, built once per batch from plain arrays. */
function targetTensors(t: Targets, K: number) {
  const { B, L } = t;
  const oneHot = new Float32Array(B * L * K);
  // A negative's box target is a unit box: its weight c* is 0, and a real box keeps GIoU finite (no 0/0).
  const boxes = new Float32Array(t.boxes);
  for (let o = 0; o < B * L; o++) {
    if (t.pos[o]) {
      const k = t.labels[o];
      if (!(k >= 0 && k < K)) throw new Error(`target label ${k} at location ${o % L} of image ${Math.floor(o / L)} is outside 0…${K - 1}: labels are classifier channels`);
      oneHot[o * K + k] = 1;
    } else {
      boxes.set([0, 0, 1, 1], 4 * o);
    }
  }
  return {
    oneHot: tf.tensor3d(oneHot, [B, L, K]),
    pos: tf.tensor3d(Float32Array.from(t.pos), [B, L, 1]),
    ctr: tf.tensor3d(t.ctr, [B, L, 1]),
    boxes: tf.tensor3d(boxes, [B, L, 4]),
  };
}

/** The three FCOS loss terms and their sum (scalars, the caller's to dispose). */
export function fcosLoss(
  out: { cls: tf.Tensor3D; box: tf.Tensor3D; ctr: tf.Tensor3D },
  targets: Targets,
  points: Points,
): LossTerms {
  const [B, L, K] = out.cls.shape;
  if (B !== targets.B || L !== targets.L) throw new Error(`targets are for [${targets.B}, ${targets.L}] but the outputs are [${B}, ${L}]`);
  return tf.tidy(() => {
    const t = targetTensors(targets, K);
    const numPos = Math.max(targets.numPos, 1);
    const cls = tf.div(tf.sum(sigmoidFocal(out.cls, t.oneHot)), numPos) as tf.Scalar;
    const xy = tf.slice(tf.tensor2d(points.data, [L, 5]), [0, 0], [L, 2]);
    const [l, tp, r, b] = tf.split(out.box, 4, -1);
    const [x, y] = tf.split(xy, 2, -1);
    const pred = tf.concat([tf.sub(x, l), tf.sub(y, tp), tf.add(x, r), tf.add(y, b)], -1);
    const w = t.ctr;
    const sumW = Math.max(targets.ctr.reduce((s, v) => s + v, 0), 1e-6);
    const reg = tf.div(tf.sum(tf.mul(tf.squeeze(w, [2]), giouLoss(pred, t.boxes))), sumW) as tf.Scalar;
    const ctr = tf.div(tf.sum(tf.mul(t.pos, bceWithLogits(out.ctr, w))), numPos) as tf.Scalar;
    return { total: tf.addN([cls, reg, ctr]) as tf.Scalar, cls, reg, ctr };
  }) as unknown as LossTerms;
}
