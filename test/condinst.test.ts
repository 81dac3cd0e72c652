// CondInst's pure parts on hand-made tensors: the dynamic head against a
// direct per-pixel computation, the bilinear resize against tfjs's own,
// dice values worked by hand, mask-target selection, and the mask loss's
// gradient reaching the controller and the mask branch of tiny-condinst.
import t from 'tap';
import * as tf from '@tensorflow/tfjs-core';
import { countParams, createDetector, disposeDetector, disposeOutput, forward } from '../src/model/detector.js';
import { modelConfig } from '../src/model/config.js';
import { makePoints } from '../src/model/points.js';
import { fcosTargets } from '../src/model/targets.js';
import { seededRandom, normalSamples } from '../src/model/params.js';
import { TINY_CONDINST_MASK, dynamicLayerShapes, dynamicParamCount } from '../src/model/condinst/mask-config.js';
import { dynamicMaskHead, interpolationMatrix, resizeBilinear } from '../src/model/condinst/dynamic-head.js';
import { diceLoss, diceLossPerInstance } from '../src/model/condinst/dice.js';
import { maskTargets, sampleMask } from '../src/model/condinst/mask-targets.js';
import { maskLoss } from '../src/model/condinst/loss.js';
import { controllerLevel, controllerRows, patchRows } from '../src/model/condinst/controller.js';
import { matMul2d } from '../src/model/condinst/matmul.js';
import { flattenLevel } from '../src/model/ops.js';
import { useTrainBackend } from './model-helpers.js';

t.before(async () => {
  await useTrainBackend();
});

const m = TINY_CONDINST_MASK;

t.test('the reference sizes give 169 dynamic parameters per instance', async (t) => {
  t.same(dynamicLayerShapes(m), [[10, 8], [8, 8], [8, 1]]);
  t.equal(dynamicParamCount(m), 169);
});

t.test('dynamic head on hand-made parameters equals a direct per-pixel computation', async (t) => {
  const B = 2, N = 3, h = 4, w = 5, C = 8, stride = 8, P = 169;
  const rand = seededRandom(7);
  const feats = normalSamples(B * h * w * C, rand);
  const params = normalSamples(B * N * P, rand).map((v) => v * 0.5);
  const centers = Float32Array.from({ length: B * N * 2 }, () => Math.floor(rand() * 40));
  const soi = Float32Array.from({ length: B * N }, (_, r) => [32, 64, 128][r % 3]);
  const images = Int32Array.from({ length: B * N }, (_, r) => Math.floor(r / N));
  const got = tf.tidy(() => dynamicMaskHead(tf.tensor4d(feats, [B, h, w, C]), tf.tensor2d(params, [B * N, P]), images, centers, soi, stride, m).arraySync());
  // Direct: AdelaiDet's order, weights of layers 1..3 ([out, in] row-major), then biases; input = (rel x, rel y, feats).
  let worst = 0;
  for (let b = 0; b < B; b++) {
    for (let n = 0; n < N; n++) {
      const r = b * N + n;
      const p = params.subarray(r * P, (r + 1) * P);
      const W1 = p.subarray(0, 80), W2 = p.subarray(80, 144), W3 = p.subarray(144, 152);
      const b1 = p.subarray(152, 160), b2 = p.subarray(160, 168), b3 = p[168];
      for (let i = 0; i < h; i++) {
        for (let j = 0; j < w; j++) {
          const x = [(centers[2 * r] - (j * stride + 4)) / soi[r], (centers[2 * r + 1] - (i * stride + 4)) / soi[r]];
          for (let c = 0; c < C; c++) x.push(feats[((b * h + i) * w + j) * C + c]);
          const h1 = Array.from({ length: 8 }, (_, o) => Math.max(0, b1[o] + x.reduce((s, v, k) => s + W1[o * 10 + k] * v, 0)));
          const h2 = Array.from({ length: 8 }, (_, o) => Math.max(0, b2[o] + h1.reduce((s, v, k) => s + W2[o * 8 + k] * v, 0)));
          const y = b3 + h2.reduce((s, v, k) => s + W3[k] * v, 0);
          worst = Math.max(worst, Math.abs(y - got[r][i][j]));
        }
      }
    }
  }
  t.ok(worst < 1e-4, `largest difference ${worst}`);
});

/**
 * The dynamic head as plain per-row tensor ops (each row's relative
 * coordinates and its image's features concatenated, one batched product a
 * layer): slow on wasm, but its gradient is tfjs's own.
 */
function referenceHead(feats: tf.Tensor4D, params: tf.Tensor2D, images: Int32Array, centers: Float32Array, soi: Float32Array, stride: number): tf.Tensor3D {
  const [, h, w, C] = feats.shape;
  const R = images.length;
  const rel = new Float32Array(R * h * w * 2);
  for (let r = 0; r < R; r++) {
    for (let q = 0; q < h * w; q++) {
      rel[(r * h * w + q) * 2] = (centers[2 * r] - ((q % w) * stride + stride / 2)) / soi[r];
      rel[(r * h * w + q) * 2 + 1] = (centers[2 * r + 1] - (Math.floor(q / w) * stride + stride / 2)) / soi[r];
    }
  }
  const parts = tf.split(params, [80, 64, 8, 8, 8, 1], 1);
  const W = [[R, 8, 10], [R, 8, 8], [R, 1, 8]].map((s, l) => tf.reshape(parts[l], s) as tf.Tensor3D);
  const b = [8, 8, 1].map((o, l) => tf.reshape(parts[3 + l], [R, 1, o]) as tf.Tensor3D);
  const flat = tf.reshape(feats, [-1, h * w, C]);
  const own = tf.concat(Array.from(images, (b) => tf.slice(flat, [b, 0, 0], [1, -1, -1])), 0);
  let x = tf.concat([tf.tensor3d(rel, [R, h * w, 2]), own], 2) as tf.Tensor3D;
  for (let l = 0; l < 3; l++) {
    if (l > 0) x = tf.relu(x);
    x = tf.add(tf.matMul(x, W[l], false, true), b[l]);
  }
  return tf.reshape(x, [R, h, w]) as tf.Tensor3D;
}

t.test('dynamic head: values and gradients equal plain per-row tensor ops (rows of any image, in any order)', async (t) => {
  const B = 3, h = 4, w = 6, C = 8, P = 169, R = 7, stride = 8;
  const rand = seededRandom(11);
  const feats = tf.tensor4d(normalSamples(B * h * w * C, rand), [B, h, w, C]);
  const params = tf.tensor2d(normalSamples(R * P, rand).map((v) => v * 0.5), [R, P]);
  const images = Int32Array.of(2, 0, 0, 1, 2, 2, 0);
  const centers = Float32Array.from({ length: 2 * R }, () => Math.floor(rand() * 48));
  const soi = Float32Array.from({ length: R }, (_, r) => [32, 64, 128][r % 3]);
  const weight = tf.tensor3d(normalSamples(R * h * w, rand), [R, h, w]);
  const run = (head: typeof referenceHead) => {
    const f = (a: tf.Tensor, p: tf.Tensor) => tf.sum(tf.mul(head(a as tf.Tensor4D, p as tf.Tensor2D, images, centers, soi, stride), weight));
    const { value, grads } = tf.valueAndGrads(f)([feats, params]);
    const out = { value: value.dataSync()[0], dFeats: grads[0].dataSync(), dParams: grads[1].dataSync() };
    tf.dispose([value, ...grads]);
    return out;
  };
  const ours = run((a, p, i, c, s, st) => dynamicMaskHead(a, p, i, c, s, st, m));
  const ref = run(referenceHead);
  const worst = (x: ArrayLike<number>, y: ArrayLike<number>) => Array.from(x).reduce((d, v, k) => Math.max(d, Math.abs(v - y[k])), 0);
  t.ok(Math.abs(ours.value - ref.value) < 1e-3 * Math.max(1, Math.abs(ref.value)), `value ${ours.value} vs ${ref.value}`);
  t.ok(worst(ours.dFeats, ref.dFeats) < 1e-3, `d feats: largest difference ${worst(ours.dFeats, ref.dFeats)}`);
  t.ok(worst(ours.dParams, ref.dParams) < 1e-3, `d params: largest difference ${worst(ours.dParams, ref.dParams)}`);
  t.ok(Array.from(ref.dParams).some((v) => v !== 0) && Array.from(ref.dFeats.subarray(h * w * C, 2 * h * w * C)).some((v) => v !== 0), 'the gradients are not trivially zero');
  tf.dispose([feats, params, weight]);
});

t.test('matMul2d: product and gradients as tf.matMul', async (t) => {
  const rand = seededRandom(5);
  const a = tf.tensor2d(normalSamples(5 * 7, rand), [5, 7]);
  const b = tf.tensor2d(normalSamples(7 * 3, rand), [7, 3]);
  const y = tf.tensor2d(normalSamples(5 * 3, rand), [5, 3]);
  const grads = (mm: (x: tf.Tensor2D, z: tf.Tensor2D) => tf.Tensor2D) => tf.grads((x: tf.Tensor, z: tf.Tensor) => tf.sum(tf.mul(mm(x as tf.Tensor2D, z as tf.Tensor2D), y)))([a, b]).map((g) => g.arraySync());
  t.same(matMul2d(a, b).arraySync(), tf.matMul(a, b).arraySync());
  const [ours, ref] = [grads(matMul2d), grads((x, z) => tf.matMul(x, z))];
  const d = ours.flat(2).reduce((s: number, v, k) => Math.max(s, Math.abs((v as number) - (ref.flat(2)[k] as number))), 0);
  t.ok(d < 1e-5, `gradients: largest difference ${d}`);
  tf.dispose([a, b, y]);
});

t.test('bilinear resize by matmul equals tfjs resizeBilinear with half-pixel centres', async (t) => {
  const x = tf.tensor3d(normalSamples(2 * 4 * 6, seededRandom(3)), [2, 4, 6]);
  for (const [H, W] of [[8, 12], [32, 48], [4, 6]]) {
    const ours = resizeBilinear(x, H, W);
    const ref = tf.squeeze(tf.image.resizeBilinear(tf.expandDims(x, 3) as tf.Tensor4D, [H, W], false, true), [3]);
    const d = tf.max(tf.abs(tf.sub(ours, ref))).dataSync()[0];
    t.ok(d < 1e-5, `${H}×${W}: largest difference ${d}`);
    tf.dispose([ours, ref]);
  }
  // Its gradient is the adjoint Mhᵀ · dY · Mw, worked out here from the matrices.
  const [H, W] = [8, 12];
  const dy = normalSamples(2 * H * W, seededRandom(4));
  const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(resizeBilinear(v as tf.Tensor3D, H, W), tf.tensor3d(dy, [2, H, W]))))(x).dataSync();
  const Mh = interpolationMatrix(4, H), Mw = interpolationMatrix(6, W);
  let gd = 0;
  for (let r = 0; r < 2; r++) for (let i = 0; i < 4; i++) for (let j = 0; j < 6; j++) {
    let v = 0;
    for (let a = 0; a < H; a++) for (let b = 0; b < W; b++) v += Mh[a * 4 + i] * dy[(r * H + a) * W + b] * Mw[b * 6 + j];
    gd = Math.max(gd, Math.abs(v - g[(r * 4 + i) * 6 + j]));
  }
  t.ok(gd < 1e-5, `gradient: largest difference ${gd}`);
  x.dispose();
  // Rows of the interpolation matrix are convex combinations.
  const M = interpolationMatrix(16, 128);
  for (let d = 0; d < 128; d++) t.ok(Math.abs(M.subarray(d * 16, d * 16 + 16).reduce((a, b) => a + b, 0) - 1) < 1e-6);
});

t.test('dice values', async (t) => {
  const probs = tf.tensor2d([
    [1, 1, 0, 0], // perfect
    [0, 0, 1, 1], // disjoint
    [0.5, 0.5, 0.5, 0.5], // half everywhere: 1 − 2·1/(1 + 2) = 1/3
    [1, 0, 0, 0], // one of two: 1 − 2·1/(1 + 2) = 1/3
  ]);
  const target = tf.tensor2d([[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0]]);
  const per = Array.from(diceLossPerInstance(probs, target).dataSync());
  const want = [1 - 4 / (4 + 1e-5), 1, 1 - 2 / (3 + 1e-5), 1 - 2 / (3 + 1e-5)];
  per.forEach((v, i) => t.ok(Math.abs(v - want[i]) < 1e-6, `row ${i}: ${v} vs ${want[i]}`));
  const mean = diceLoss(probs, target, Float32Array.of(1, 1, 0, 1)).dataSync()[0];
  t.ok(Math.abs(mean - (want[0] + want[1] + want[3]) / 3) < 1e-6, 'padding rows (weight 0) are left out of the mean');
  t.equal(diceLoss(probs, target, new Float32Array(4)).dataSync()[0], 0, 'no instance: 0, not NaN');
  tf.dispose([probs, target]);
});

t.test('patchRows: the 3×3 neighbourhoods, zero outside; the gradient adds each row back', async (t) => {
  // One image, levels of 2×3 and 1×1, F = 1: tower values 1..6 and 7.
  const t0 = tf.tensor4d([1, 2, 3, 4, 5, 6], [1, 2, 3, 1]);
  const t1 = tf.tensor4d([7], [1, 1, 1, 1]);
  const rows = Int32Array.of(4, 6, 7, 4); // (1, 1) of level 0, level 1's only cell, padding, (1, 1) again
  t.same(patchRows([t0, t1], rows).arraySync(), [
    [1, 2, 3, 4, 5, 6, 0, 0, 0],
    [0, 0, 0, 0, 7, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 0, 0, 0],
    [1, 2, 3, 4, 5, 6, 0, 0, 0],
  ]);
  const wts = tf.tensor2d(Array.from({ length: 36 }, (_, k) => k + 1), [4, 9]);
  const [g0, g1] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(patchRows([a as tf.Tensor4D, b as tf.Tensor4D], rows), wts)))([t0, t1]);
  // Cell k of level 0 is tap k of rows 0 and 3: weights k+1 and 28+k.
  t.same(Array.from(g0.dataSync()), [1, 2, 3, 4, 5, 6].map((k) => k + 27 + k));
  t.same(Array.from(g1.dataSync()), [14], 'tap 4 of row 1');
  t.throws(() => patchRows([t0, t1], Int32Array.of(8)), /not a location/);
  tf.dispose([t0, t1, wts, g0, g1]);
});

t.test('sampleMask takes the pixel at the centre of each stride cell', async (t) => {
  const data = new Uint8Array(8 * 8);
  data[2 * 8 + 2] = 1; // (x 2, y 2) → cell (0, 0) at stride 4
  data[6 * 8 + 1] = 1; // not a cell centre
  data[6 * 8 + 6] = 1; // (x 6, y 6) → cell (1, 1)
  t.same(Array.from(sampleMask({ data, width: 8, height: 8 }, 4)), [1, 0, 0, 1]);
});

t.test('mask targets: positives with masks become slots, at most maxInstancesPerImage by centerness', async (t) => {
  const cfg = modelConfig('tiny-condinst');
  const points = makePoints(cfg);
  const gt = [
    { boxes: [[0, 0, 40, 40], [60, 60, 120, 120]], labels: [0, 0] },
    { boxes: [[10, 10, 30, 30]], labels: [0] },
  ];
  const targets = fcosTargets(points, gt, cfg.centerRadius);
  const mk = (fill: number) => new Uint8Array(32 * 32).fill(fill);
  const masks = [[mk(1), null], [mk(1)]];
  const posOf = (b: number, k: number) => Array.from({ length: points.L }, (_, i) => i).filter((i) => targets.matched![b * points.L + i] === k);
  const a0 = posOf(0, 0), b0 = posOf(1, 0);
  t.ok(a0.length > 0 && posOf(0, 1).length > 0 && b0.length > 0);
  const mt = maskTargets(targets, points, masks, 32, 32, { ...m, maxInstancesPerImage: 4 }, 128);
  const slots = (b: number) => Array.from({ length: mt.N }, (_, k) => k).filter((k) => mt.valid[b * mt.N + k])
    .map((k) => mt.rows[b * mt.N + k] - b * points.L);
  const best = (b: number, locs: number[]) => [...locs].sort((p, q) => targets.ctr[b * points.L + q] - targets.ctr[b * points.L + p] || p - q).slice(0, 4).sort((p, q) => p - q);
  t.same(slots(0), best(0, a0), 'image 0: only the instance with a mask, its 4 most central positives');
  t.same(slots(1), best(1, b0));
  t.equal(mt.N, 4);
  t.equal(mt.count, slots(0).length + slots(1).length);
  const k0 = slots(0)[0];
  t.same([mt.centers[0], mt.centers[1]], [points.data[5 * k0], points.data[5 * k0 + 1]]);
  t.equal(mt.soi[0], 32, 'P3 at S = 128: 64·128/256');
});

t.test('tiny-condinst: shapes, parameter count, box outputs as tiny-fcos, gradient of the mask loss', async (t) => {
  const fcos = modelConfig('tiny-fcos');
  const cfg = modelConfig('tiny-condinst');
  t.equal(countParams(fcos), 1542363, 'tiny-fcos unchanged');
  const extra = countParams(cfg) - countParams(fcos);
  // controller 3·3·64·169 + 169; refine 3 × (3·3·64·32 + 64); tower 2 × (3·3·32·32 + 64); out 32·8 + 8
  t.equal(extra, 9 * 64 * 169 + 169 + 3 * (9 * 64 * 32 + 64) + 2 * (9 * 32 * 32 + 64) + 32 * 8 + 8);
  const det = createDetector(cfg, { seed: 1 });
  const box = createDetector(fcos, { seed: 1 });
  const x = tf.randomUniform([2, 128, 128, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
  const out = forward(det, x);
  const ref = forward(box, x);
  t.same(out.boxTowers!.map((b) => b.shape), [[2, 16, 16, 64], [2, 8, 8, 64], [2, 4, 4, 64], [2, 2, 2, 64], [2, 1, 1, 64]]);
  t.same(out.maskFeats!.shape, [2, 16, 16, 8]);
  // The controller at chosen rows equals the conv over every location (edges, every level, both images, padding).
  const rows = Int32Array.from([0, 15, 17, 255, 256, 300, 336, 339, 340, 341, 341 + 100, 341 + 340, 2 * 341]);
  const got = tf.tidy(() => controllerRows(det.params, out.boxTowers!, rows).arraySync());
  const full = tf.tidy(() => tf.concat(out.boxTowers!.map((b) => flattenLevel(controllerLevel(det.params, b))), 1).arraySync()) as number[][][];
  const bias = Array.from(det.params.get('head.controller.bias')!.dataSync());
  let worst = 0;
  rows.forEach((row, r) => {
    const want = row === 2 * 341 ? bias : full[Math.floor(row / 341)][row % 341];
    want.forEach((v, k) => (worst = Math.max(worst, Math.abs(v - got[r][k]))));
  });
  t.ok(worst < 1e-5, `controllerRows vs the full conv: largest difference ${worst}`);
  t.equal(tf.max(tf.abs(tf.sub(out.box, ref.box))).dataSync()[0], 0, 'the mask parts leave the box outputs alone');
  disposeOutput(out);
  disposeOutput(ref);
  disposeDetector(box);

  const points = makePoints(cfg);
  const gt = [{ boxes: [[8, 8, 56, 72]], labels: [0] }, { boxes: [[40, 20, 120, 100]], labels: [0] }];
  const targets = fcosTargets(points, gt, cfg.centerRadius);
  const mask = (b: number[]) => {
    const d = new Uint8Array(32 * 32);
    for (let v = 0; v < 32; v++) for (let u = 0; u < 32; u++) if (4 * u + 2 > b[0] && 4 * u + 2 < b[2] && 4 * v + 2 > b[1] && 4 * v + 2 < b[3]) d[v * 32 + u] = 1;
    return d;
  };
  const mt = maskTargets(targets, points, gt.map((g) => [mask(g.boxes[0])]), 32, 32, cfg.mask!, 128);
  t.ok(mt.count > 0);
  const before = tf.memory().numTensors;
  const { value, grads } = tf.variableGrads(() => {
    const o = forward(det, x);
    return maskLoss(det.params, { boxTowers: o.boxTowers!, maskFeats: o.maskFeats! }, mt, cfg.mask!);
  }, [...det.params.values()]);
  const loss = value.dataSync()[0];
  t.ok(loss > 0 && loss <= 1, `dice ${loss}`);
  const byName = new Map([...det.params].map(([n, v]) => [v.name, n]));
  const norm = (part: string) => Object.entries(grads).filter(([k]) => byName.get(k)!.startsWith(part))
    .reduce((s, [, g]) => {
      const sq = tf.tidy(() => tf.sum(tf.square(g)));
      const v = sq.dataSync()[0];
      sq.dispose();
      return s + v;
    }, 0);
  t.ok(norm('head.controller') > 0, 'gradient reaches the controller');
  t.ok(norm('mask_branch') > 0, 'and the mask branch');
  t.equal(norm('head.cls_logits'), 0, 'not the classifier');
  tf.dispose([value, ...Object.values(grads)]);
  t.equal(tf.memory().numTensors, before, 'no tensor leaks');
  x.dispose();
  disposeDetector(det);
});
