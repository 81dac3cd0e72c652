// The detector as configuration: parameter counts, shapes, initialisation,
// config validation, and the ops on hand-made tensors.
import t from 'tap';
import * as tf from '@tensorflow/tfjs-core';
import { useTestBackend, smallConfig } from './model-helpers.js';
import { TINY_FCOS, modelConfig, levelSizes } from '../src/model/config.js';
import { countParams, createDetector, disposeDetector, forward, disposeOutput } from '../src/model/detector.js';
import { conv, groupNorm, up2 } from '../src/model/ops.js';
import { predict } from '../src/model/predict.js';

t.before(async () => {
  await useTestBackend();
});

t.test('tiny-fcos has the parameter counts of the spec', async (t) => {
  t.equal(countParams(modelConfig('tiny-fcos')), 1_542_363, 'K = 1');
  t.equal(countParams(modelConfig('tiny-fcos', { numClasses: 8 })), 1_546_402, 'K = 8');
  const det = createDetector(modelConfig('tiny-fcos', { numClasses: 8 }));
  const n = [...det.params.values()].reduce((s, v) => s + v.size, 0);
  t.equal(n, 1_546_402, 'the variables hold as many numbers');
  disposeDetector(det);
});

t.test('forward gives the flattened outputs and the pyramid', async (t) => {
  const cfg = modelConfig('tiny-fcos', { numClasses: 3 });
  const det = createDetector(cfg);
  const x = tf.randomUniform([2, 128, 128, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
  const out = forward(det, x, { features: true });
  t.same(out.cls.shape, [2, 341, 3]);
  t.same(out.box.shape, [2, 341, 4]);
  t.same(out.ctr.shape, [2, 341, 1]);
  t.same(out.features!.C.map((c) => c.shape), [[2, 32, 32, 32], [2, 16, 16, 64], [2, 8, 8, 128], [2, 4, 4, 256]]);
  t.same(out.features!.P.map((p) => p.shape), [16, 8, 4, 2, 1].map((h) => [2, h, h, 64]));
  t.ok((await tf.min(out.box).data())[0] >= 0, 'ltrb distances are non-negative');
  disposeOutput(out);
  // S = 256 is the same model: 32² + 16² + 8² + 4² + 2² locations.
  const big = tf.zeros([1, 256, 256, 3]) as tf.Tensor4D;
  const o2 = forward(det, big);
  t.same(o2.cls.shape, [1, 1364, 3]);
  t.same(levelSizes(cfg, 256), [32, 16, 8, 4, 2]);
  t.throws(() => forward(det, tf.zeros([1, 100, 100, 3]) as tf.Tensor4D), /multiple of 32/);
  t.throws(() => forward(det, tf.zeros([1, 128, 64, 3]) as tf.Tensor4D), /must be square/);
  tf.dispose([x, big]);
  disposeOutput(o2);
  disposeDetector(det);
});

t.test('forward and predict leave no tensors behind', async (t) => {
  const det = createDetector(smallConfig());
  const x = tf.randomUniform([2, 64, 64, 3], 0, 1, 'float32', 2) as tf.Tensor4D;
  disposeOutput(forward(det, x));
  await predict(det, x);
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) {
    disposeOutput(forward(det, x, { features: true }));
    await predict(det, x, [0, 1].map(() => ({ width: 640, height: 480, letterbox: { scale: 0.1, offsetX: 0, offsetY: 0 } })));
  }
  t.equal(tf.memory().numTensors, before);
  x.dispose();
  disposeDetector(det);
});

t.test('initialisation follows the spec and the seed', async (t) => {
  const det = createDetector(TINY_FCOS, { seed: 7 });
  const val = (n: string) => det.params.get(n)!.dataSync();
  t.ok(val('head.cls_logits.bias').every((v) => Math.abs(v + Math.log(99)) < 1e-6), 'classifier bias −log((1−π)/π) = −4.595');
  t.ok(val('head.scales').every((v) => v === 1), 'level scales 1');
  t.ok(val('backbone.stages.2.0.1.weight').every((v) => v === 1) && val('backbone.stages.2.0.1.bias').every((v) => v === 0), 'GN γ 1, β 0');
  t.ok(val('fpn.output.1.bias').every((v) => v === 0), 'conv biases 0');
  const std = (a: Float32Array) => Math.sqrt(a.reduce((s, v) => s + v * v, 0) / a.length);
  const he = std(val('backbone.stages.3.1.0.weight'));
  t.ok(Math.abs(he / Math.sqrt(2 / (9 * 256)) - 1) < 0.01, `He-normal std ${he.toFixed(5)} ≈ √(2/fan_in)`);
  const head = std(val('head.box_tower.0.0.weight'));
  t.ok(Math.abs(head / 0.01 - 1) < 0.02, `head std ${head.toFixed(5)} ≈ 0.01`);
  const again = createDetector(TINY_FCOS, { seed: 7 });
  const other = createDetector(TINY_FCOS, { seed: 8 });
  t.same(again.params.get('fpn.p6.weight')!.dataSync(), val('fpn.p6.weight'), 'same seed, same weights');
  t.not(other.params.get('fpn.p6.weight')!.dataSync()[0], val('fpn.p6.weight')[0], 'another seed, other weights');
  [det, again, other].forEach(disposeDetector);
});

t.test('bigger or smaller models are configuration; bad configs name the key', async (t) => {
  const small = smallConfig();
  const det = createDetector(small);
  const out = forward(det, tf.zeros([1, 64, 64, 3]) as tf.Tensor4D);
  t.same(out.cls.shape, [1, 64 + 16 + 4 + 1 + 1, 1]);
  disposeOutput(out);
  disposeDetector(det);
  t.throws(() => modelConfig('tiny-fcos', { strides: [8, 16, 32, 64] }), /strides .* the architecture gives \[8,16,32,64,128\]/);
  t.throws(() => modelConfig('tiny-fcos', { gnGroups: 3 }), /backbone\.stemChannels = 16 is not divisible by gnGroups = 3/);
  t.throws(() => modelConfig('tiny-fcos', { numClasses: 0 }), /numClasses must be a positive integer/);
  t.throws(() => modelConfig('tiny-fcos', { inputSize: 100 }), /inputSize = 100 must be a multiple of 32/);
  t.throws(() => modelConfig('huge-fcos'), /unknown model preset 'huge-fcos' \(have: tiny-fcos/);
});

t.test('conv pads one on every side, also at stride 2', async (t) => {
  const x = tf.ones([1, 4, 4, 1]) as tf.Tensor4D;
  const w = tf.ones([3, 3, 1, 1]) as tf.Tensor4D;
  // Window (0,0) sees a 2×2 corner of the image, (0,1) a 2×3 edge, (1,1) 3×3;
  // tfjs 'same' would give 9 at (0,0) since it pads only after.
  t.same(Array.from(conv(x, w, 2).dataSync()), [4, 6, 6, 9]);
  t.same(Array.from(conv(x, w, 1, tf.tensor1d([1])).dataSync()).slice(0, 4), [5, 7, 7, 5], 'stride 1 with a bias');
  tf.dispose([x, w]);
});

t.test('groupNorm: per sample and group, biased variance, per-channel affine', async (t) => {
  const [B, H, W, C, G] = [2, 3, 2, 4, 2];
  const data = Float32Array.from({ length: B * H * W * C }, (_, i) => Math.sin(i * 1.7) * 3 + (i % 5));
  const gamma = [1, 2, 0.5, -1];
  const beta = [0, 1, -1, 0.25];
  const got = groupNorm(tf.tensor4d(data, [B, H, W, C]), tf.tensor1d(gamma), tf.tensor1d(beta), G, 1e-5).dataSync();
  let worst = 0;
  for (let b = 0; b < B; b++) {
    for (let g = 0; g < G; g++) {
      const idx: number[] = [];
      for (let p = 0; p < H * W; p++) for (let c = g * 2; c < g * 2 + 2; c++) idx.push(b * H * W * C + p * C + c);
      const mean = idx.reduce((s, i) => s + data[i], 0) / idx.length;
      const v = idx.reduce((s, i) => s + (data[i] - mean) ** 2, 0) / idx.length;
      for (const i of idx) {
        const c = i % C;
        worst = Math.max(worst, Math.abs(got[i] - (((data[i] - mean) / Math.sqrt(v + 1e-5)) * gamma[c] + beta[c])));
      }
    }
  }
  t.ok(worst < 1e-5, `matches the formula (max |Δ| ${worst.toExponential(2)})`);
});

t.test('up2 is nearest, src = floor(dst/2)', async (t) => {
  const x = tf.tensor4d([1, 2, 3, 4], [1, 2, 2, 1]);
  t.same(Array.from(up2(x).dataSync()), [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
});
