// FCOS losses on hand-made tensors, against the formulas written out in JS.
import t from 'tap';
import * as tf from '@tensorflow/tfjs-core';
import { useTrainBackend } from './model-helpers.js';
import { bceWithLogits, fcosLoss, giouLoss, sigmoidFocal } from '../src/model/loss.js';
import type { Points } from '../src/model/points.js';
import type { Targets } from '../src/model/targets.js';

t.before(async () => {
  await useTrainBackend();
});

const close = (a: number, b: number, tol = 1e-5) => Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));
const sig = (x: number) => 1 / (1 + Math.exp(-x));
const bce = (x: number, y: number) => -(y * Math.log(sig(x)) + (1 - y) * Math.log(1 - sig(x)));
const focal = (x: number, y: number) => {
  const p = sig(x);
  const pt = p * y + (1 - p) * (1 - y);
  return (0.25 * y + 0.75 * (1 - y)) * (1 - pt) ** 2 * bce(x, y);
};

t.test('BCE with logits is exact and stable', async (t) => {
  const x = [-3, -0.5, 0, 0.7, 4];
  const y = [0, 1, 0.3, 1, 0.2];
  const got = bceWithLogits(tf.tensor1d(x), tf.tensor1d(y)).dataSync();
  x.forEach((xi, i) => t.ok(close(got[i], bce(xi, y[i])), `x ${xi}, y ${y[i]}`));
  t.equal(bceWithLogits(tf.scalar(100), tf.scalar(0)).dataSync()[0], 100, 'no overflow at large logits');
});

t.test('sigmoid focal loss: α_t (1 − p_t)^γ BCE', async (t) => {
  t.ok(close(sigmoidFocal(tf.scalar(0), tf.scalar(1)).dataSync()[0], 0.25 * 0.25 * Math.LN2), 'x 0, positive');
  t.ok(close(sigmoidFocal(tf.scalar(0), tf.scalar(0)).dataSync()[0], 0.75 * 0.25 * Math.LN2), 'x 0, negative');
  const x = [-4.6, -1, 2, 5];
  const y = [0, 1, 0, 1];
  const got = sigmoidFocal(tf.tensor1d(x), tf.tensor1d(y)).dataSync();
  x.forEach((xi, i) => t.ok(close(got[i], focal(xi, y[i])), `x ${xi}, y ${y[i]}: ${got[i]}`));
});

t.test('GIoU loss', async (t) => {
  const a = tf.tensor2d([[0, 0, 2, 2], [0, 0, 1, 1], [0, 0, 2, 2]]);
  const b = tf.tensor2d([[0, 0, 2, 2], [2, 0, 3, 1], [1, 1, 3, 3]]);
  const got = giouLoss(a, b).dataSync();
  t.ok(close(got[0], 0), 'identical boxes: 0');
  t.ok(close(got[1], 1 + 1 / 3), 'disjoint: I 0, U 2, C 3 → 1 + 1/3');
  t.ok(close(got[2], 1 - (1 / 7 - 2 / 9)), 'overlapping: I 1, U 7, C 9');
});

// Two locations of one image, K = 2: location 0 is positive (class 1, box
// [0, 0, 20, 20], c* 0.5), location 1 negative.
const points: Points = { data: new Float32Array([10, 10, 8, 0, 64, 30, 30, 8, 0, 64]), L: 2, levelStart: [0, 2] };
const targets: Targets = {
  B: 1, L: 2, numPos: 1,
  pos: new Uint8Array([1, 0]),
  labels: new Int32Array([1, -1]),
  boxes: new Float32Array([0, 0, 20, 20, 0, 0, 0, 0]),
  ctr: new Float32Array([0.5, 0]),
};

t.test('fcosLoss: the three terms, normalised as in the spec', async (t) => {
  const clsLogits = [0.3, -1.2, 2.0, -0.4];
  const ctrLogits = [0.8, -3];
  // Predicted box at (10, 10) with ltrb (5, 10, 10, 5) = [5, 0, 20, 15]: I 225, U 400, C 400.
  const out = {
    cls: tf.tensor3d(clsLogits, [1, 2, 2]),
    box: tf.tensor3d([5, 10, 10, 5, 1, 1, 1, 1], [1, 2, 4]),
    ctr: tf.tensor3d(ctrLogits, [1, 2, 1]),
  };
  const l = fcosLoss(out, targets, points);
  const wantCls = focal(0.3, 0) + focal(-1.2, 1) + focal(2.0, 0) + focal(-0.4, 0);
  const wantReg = (0.5 * (1 - 225 / 400)) / 0.5;
  const wantCtr = bce(0.8, 0.5);
  t.ok(close(l.cls.dataSync()[0], wantCls), `cls ${l.cls.dataSync()[0]} vs ${wantCls}`);
  t.ok(close(l.reg.dataSync()[0], wantReg), `reg ${l.reg.dataSync()[0]} vs ${wantReg}`);
  t.ok(close(l.ctr.dataSync()[0], wantCtr), `ctr ${l.ctr.dataSync()[0]} vs ${wantCtr}`);
  t.ok(close(l.total.dataSync()[0], wantCls + wantReg + wantCtr), 'total is the sum');
});

t.test('no positives: classification only, finite, and gradients flow', async (t) => {
  const none: Targets = { ...targets, numPos: 0, pos: new Uint8Array(2), labels: new Int32Array([-1, -1]), ctr: new Float32Array(2) };
  const cls = tf.variable(tf.tensor3d([0.3, -1.2, 2.0, -0.4], [1, 2, 2]));
  const box = tf.variable(tf.tensor3d([0, 0, 0, 0, 1, 1, 1, 1], [1, 2, 4]));
  const ctr = tf.variable(tf.tensor3d([0.8, -3], [1, 2, 1]));
  const { value, grads } = tf.variableGrads(() => fcosLoss({ cls, box, ctr }, none, points).total, [cls, box, ctr]);
  t.ok(close(value.dataSync()[0], focal(0.3, 0) + focal(-1.2, 0) + focal(2.0, 0) + focal(-0.4, 0)), 'N_pos clamps to 1');
  for (const [name, g] of Object.entries(grads)) t.ok(g.dataSync().every(Number.isFinite), `finite gradient for ${name}`);
  t.ok(grads[box.name].dataSync().every((v) => v === 0), 'no box gradient without positives');
});

t.test('a label outside the classifier is an error naming the location', async (t) => {
  const bad: Targets = { ...targets, labels: new Int32Array([2, -1]) };
  const out = { cls: tf.zeros([1, 2, 2]) as tf.Tensor3D, box: tf.ones([1, 2, 4]) as tf.Tensor3D, ctr: tf.zeros([1, 2, 1]) as tf.Tensor3D };
  t.throws(() => fcosLoss(out, bad, points), /target label 2 at location 0 of image 0 is outside 0…1/);
});
