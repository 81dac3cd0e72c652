// The training step: the optimisers' update rules against hand computation,
// exact resume from saved optimizer state, no tensor leaks over 100 steps,
// and a small model that learns a fixed batch.
import t from 'tap';
import * as tf from '@tensorflow/tfjs-core';
import { randomBatch, smallConfig, useTrainBackend } from './model-helpers.js';
import { createDetector, disposeDetector } from '../src/model/detector.js';
import { ADAMW_DEFAULTS, Optimizer, SGD_DEFAULTS } from '../src/model/optim.js';
import type { Params } from '../src/model/params.js';
import { trainStep } from '../src/model/train-step.js';

let backend = '';
t.before(async () => {
  backend = await useTrainBackend();
});

const close = (a: number, b: number) => Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b));

function oneParam(v: number[]): Params {
  return new Map([['w', tf.variable(tf.tensor1d(v))]]);
}

t.test('SGD: decay added to the gradient, momentum buffer starts at the first update', async (t) => {
  const params = oneParam([1, -2]);
  const opt = new Optimizer({ kind: 'sgd', momentum: 0.9, weightDecay: 0.1 });
  const g = tf.tensor1d([0.5, 0.25]);
  let p = [1, -2];
  let buf = [0, 0];
  for (let step = 1; step <= 3; step++) {
    opt.apply(params, new Map([['w', g]]), 0.1);
    const d = p.map((pi, i) => [0.5, 0.25][i] + 0.1 * pi);
    buf = step === 1 ? d : buf.map((b, i) => 0.9 * b + d[i]);
    p = p.map((pi, i) => pi - 0.1 * buf[i]);
    const got = params.get('w')!.dataSync();
    t.ok(close(got[0], p[0]) && close(got[1], p[1]), `step ${step}: [${Array.from(got)}] = [${p}]`);
  }
  t.equal(opt.step, 3);
  opt.dispose();
});

t.test('AdamW: decoupled decay, bias-corrected moments', async (t) => {
  const params = oneParam([1, -2]);
  const c = { ...ADAMW_DEFAULTS, weightDecay: 0.05 };
  const opt = new Optimizer(c);
  const gs = [[0.5, -1], [0.2, 0.3], [-0.4, 0.1]];
  let p = [1, -2];
  let m = [0, 0];
  let v = [0, 0];
  gs.forEach((g, k) => {
    opt.apply(params, new Map([['w', tf.tensor1d(g)]]), 0.01);
    const s = k + 1;
    m = m.map((mi, i) => c.beta1 * mi + (1 - c.beta1) * g[i]);
    v = v.map((vi, i) => c.beta2 * vi + (1 - c.beta2) * g[i] ** 2);
    p = p.map((pi, i) => pi * (1 - 0.01 * c.weightDecay) - (0.01 / (1 - c.beta1 ** s)) * m[i] / (Math.sqrt(v[i]) / Math.sqrt(1 - c.beta2 ** s) + c.eps));
    const got = params.get('w')!.dataSync();
    t.ok(close(got[0], p[0]) && close(got[1], p[1]), `step ${s}: [${Array.from(got)}] = [${p}]`);
  });
  opt.dispose();
});

t.test('a parameter without a gradient is left alone, as in PyTorch', async (t) => {
  const params: Params = new Map([['a', tf.variable(tf.tensor1d([1]))], ['b', tf.variable(tf.tensor1d([1]))]]);
  const opt = new Optimizer(SGD_DEFAULTS);
  opt.apply(params, new Map([['a', tf.tensor1d([1])]]), 0.1);
  t.equal(params.get('b')!.dataSync()[0], 1, 'no decay either');
  t.not(params.get('a')!.dataSync()[0], 1);
  t.throws(() => opt.apply(params, new Map([['c', tf.tensor1d([1])]]), 0.1), /gradient for 'c', which is not a parameter/);
  opt.dispose();
});

for (const kind of ['sgd', 'adamw'] as const) {
  t.test(`${kind}: resuming from saved state is bit-exact`, async (t) => {
    const cfg = smallConfig();
    const batches = [1, 2, 3, 4, 5].map((s) => randomBatch(2, 64, 1, s));
    const config = kind === 'sgd' ? SGD_DEFAULTS : ADAMW_DEFAULTS;
    const det = createDetector(cfg, { seed: 4 });
    const opt = new Optimizer(config);
    for (const b of batches.slice(0, 3)) await trainStep(det, opt, b, { lr: 0.01 });
    const weights = new Map([...det.params].map(([n, v]) => [n, v.clone()]));
    const state = opt.getState();
    for (const b of batches.slice(3)) await trainStep(det, opt, b, { lr: 0.01 });
    const resumed = createDetector(cfg, { seed: 99 });
    for (const [n, w] of weights) resumed.params.get(n)!.assign(w);
    const opt2 = new Optimizer(config);
    opt2.setState(state);
    for (const b of batches.slice(3)) await trainStep(resumed, opt2, b, { lr: 0.01 });
    const same = [...det.params].every(([n, v]) => {
      const a = v.dataSync();
      const b = resumed.params.get(n)!.dataSync();
      return a.every((x, i) => x === b[i]);
    });
    t.ok(same, 'weights after 2 more steps are identical, bit for bit');
    tf.dispose([...weights.values(), ...state.slots.values(), ...batches.map((b) => b.images)]);
    [opt, opt2].forEach((o) => o.dispose());
    [det, resumed].forEach(disposeDetector);
  });
}

t.test('no tensor leaks: as many tensors after 100 steps as after 1', async (t) => {
  const det = createDetector(smallConfig({ inputSize: 32 }), { seed: 5 });
  const opt = new Optimizer(SGD_DEFAULTS);
  const batch = randomBatch(2, 32, 1, 9);
  await trainStep(det, opt, batch, { lr: 0.01 });
  const after1 = tf.memory().numTensors;
  for (let i = 1; i < 100; i++) await trainStep(det, opt, batch, { lr: 0.01 });
  t.equal(tf.memory().numTensors, after1, `${after1} tensors after step 1 and after step 100 (${backend})`);
  opt.dispose();
  disposeDetector(det);
  batch.images.dispose();
});

t.test('a small model fits a fixed batch', async (t) => {
  const det = createDetector(smallConfig(), { seed: 6 });
  const opt = new Optimizer(SGD_DEFAULTS);
  const batch = randomBatch(2, 64, 1, 3);
  const first = await trainStep(det, opt, batch, { lr: 0.01 });
  let last = first;
  for (let i = 0; i < 40; i++) last = await trainStep(det, opt, batch, { lr: 0.01 });
  t.ok(first.numPos > 0, `${first.numPos} positive locations`);
  t.ok(last.total < 0.7 * first.total, `loss ${first.total.toFixed(3)} → ${last.total.toFixed(3)} in 40 steps`);
  opt.dispose();
  disposeDetector(det);
  batch.images.dispose();
});
