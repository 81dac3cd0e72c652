// casl's wasm convolution gradients (src/model/backend/kernels.ts) against
// the cpu backend's reference kernels, on every shape family the detector
// and its users produce: strides 1–3, 'same', 'valid', a symmetric numeric
// pad (the model's `pad = 1`), explicit (also lopsided) pad arrays, odd
// sizes, 1×1, 3×3 and 5×5 filters, batch > 1. The same case list checks the
// native kernels (native/conv, src/model/backend/native.ts) — both gradients
// and the forward Conv2D / FusedConv2D (bias, relu) — whenever the addon is
// built; an addon that is built but does not load fails here. Then: every
// kernel a tiny-fcos training step runs on cpu exists on wasm.
import { existsSync } from 'node:fs';
import t, { type Test } from 'tap';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/model/backend/index.js';
import { modelConfig } from '../src/model/config.js';
import { createDetector, disposeDetector } from '../src/model/detector.js';
import { lossAndGrads } from '../src/model/train-step.js';
import { addonPath, nativeUnavailable, stopNativeKernels, useNativeKernels } from '../src/model/backend/native.js';

type Pad = 'same' | 'valid' | number | [[0, 0], [number, number], [number, number], [0, 0]];

interface Case { b: number; h: number; w: number; cin: number; cout: number; k: number; s: number; pad: Pad }

function seeded(n: number, seed: number): Float32Array {
  let a = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let r = Math.imul(a ^ (a >>> 15), 1 | a);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    out[i] = ((r ^ (r >>> 14)) >>> 0) / 4294967296 - 0.5;
  }
  return out;
}

const pads: Pad[] = ['same', 'valid', 1, [[0, 0], [1, 1], [1, 1], [0, 0]], [[0, 0], [2, 0], [0, 1], [0, 0]]];
const cases: Case[] = [];
for (const s of [1, 2, 3]) {
  for (const k of [1, 3, 5]) {
    for (const pad of pads) {
      for (const [b, h, w] of [[2, 7, 9], [3, 11, 6]]) cases.push({ b, h, w, cin: 3, cout: 5, k, s, pad });
    }
  }
}
// The model's own shapes: a stride-2 3×3 conv on an even input, and a wide 1×1.
cases.push({ b: 2, h: 16, w: 16, cin: 16, cout: 32, k: 3, s: 2, pad: 1 });
cases.push({ b: 2, h: 8, w: 8, cin: 64, cout: 64, k: 1, s: 1, pad: 0 });

function outShape(c: Case): [number, number, number, number] {
  const x = tf.zeros([c.b, c.h, c.w, c.cin]) as tf.Tensor4D;
  const f = tf.zeros([c.k, c.k, c.cin, c.cout]) as tf.Tensor4D;
  const y = tf.conv2d(x, f, c.s, c.pad as never);
  const shape = y.shape;
  tf.dispose([x, f, y]);
  return shape;
}

/** Both gradients through the kernels themselves, on the current backend. */
function gradients(c: Case, dyShape: number[]): { dW: Float32Array; dx: Float32Array } {
  const x = tf.tensor4d(seeded(c.b * c.h * c.w * c.cin, 1), [c.b, c.h, c.w, c.cin]);
  const f = tf.tensor4d(seeded(c.k * c.k * c.cin * c.cout, 2), [c.k, c.k, c.cin, c.cout]);
  const dy = tf.tensor(seeded(dyShape.reduce((a, d) => a * d, 1), 3), dyShape);
  const attrs = { strides: [c.s, c.s], pad: c.pad, dataFormat: 'NHWC', dimRoundingMode: undefined };
  const dW = tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { ...attrs, filterShape: f.shape } as never) as tf.Tensor;
  const dx = tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: f }, { ...attrs, inputShape: x.shape } as never) as tf.Tensor;
  t.same(dW.shape, f.shape, 'dW has the filter shape');
  t.same(dx.shape, x.shape, 'dx has the input shape');
  const res = { dW: dW.dataSync() as Float32Array, dx: dx.dataSync() as Float32Array };
  tf.dispose([x, f, dy, dW, dx]);
  return res;
}

function maxRelErr(a: Float32Array, b: Float32Array): number {
  let scale = 1e-6;
  for (const v of b) scale = Math.max(scale, Math.abs(v));
  let worst = 0;
  for (let i = 0; i < b.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / scale);
  return worst;
}

t.before(async () => {
  const info = await initBackend('wasm', { log: () => {} });
  if (info.name !== 'wasm') throw new Error(`kernel tests need the wasm backend, got ${info.name}`);
});

/** Forward conv and fused conv (bias + relu) through the kernels, on the current backend. */
function forwards(c: Case): { y: Float32Array; fused: Float32Array } {
  const x = tf.tensor4d(seeded(c.b * c.h * c.w * c.cin, 1), [c.b, c.h, c.w, c.cin]);
  const f = tf.tensor4d(seeded(c.k * c.k * c.cin * c.cout, 2), [c.k, c.k, c.cin, c.cout]);
  const bias = tf.tensor1d(seeded(c.cout, 6));
  const y = tf.conv2d(x, f, c.s, c.pad as never);
  const fused = tf.fused.conv2d({ x, filter: f, strides: c.s, pad: c.pad as never, bias, activation: 'relu' });
  const res = { y: y.dataSync() as Float32Array, fused: fused.dataSync() as Float32Array };
  tf.dispose([x, f, bias, y, fused]);
  return res;
}

async function gradientCases(t: Test, label: string): Promise<void> {
  for (const c of cases) {
    const name = `B${c.b} ${c.h}×${c.w}×${c.cin}→${c.cout} k${c.k} s${c.s} pad ${JSON.stringify(c.pad)}`;
    await tf.setBackend('cpu');
    const dyShape = outShape(c);
    if (dyShape[1] < 1 || dyShape[2] < 1) continue;
    const want = gradients(c, dyShape);
    await tf.setBackend('wasm');
    const got = gradients(c, dyShape);
    const eW = maxRelErr(got.dW, want.dW);
    const eX = maxRelErr(got.dx, want.dx);
    t.ok(eW < 1e-5, `${label} ${name}: dW max relative error ${eW.toExponential(1)}`);
    t.ok(eX < 1e-5, `${label} ${name}: dx max relative error ${eX.toExponential(1)}`);
  }
}

t.test('casl wasm Conv2DBackpropFilter and Conv2DBackpropInput match the cpu backend', async (t) => {
  stopNativeKernels();
  await gradientCases(t, 'wasm');
});

t.test('native kernels (when built) match the cpu backend: dW, dx, Conv2D, FusedConv2D', async (t) => {
  if (!existsSync(addonPath()) || process.env.CASL_NATIVE === '0') {
    t.skip(`native kernels not tested: ${nativeUnavailable()}`);
    return;
  }
  // Built but unusable is a failure, not a skip.
  const native = useNativeKernels(2);
  t.ok(native, `the built addon loads and registers (${nativeUnavailable() ?? 'ok'})`);
  if (!native) return;
  t.teardown(stopNativeKernels);
  await gradientCases(t, `native ${native.isa}`);
  for (const c of cases) {
    const name = `B${c.b} ${c.h}×${c.w}×${c.cin}→${c.cout} k${c.k} s${c.s} pad ${JSON.stringify(c.pad)}`;
    await tf.setBackend('cpu');
    const dyShape = outShape(c);
    if (dyShape[1] < 1 || dyShape[2] < 1) continue;
    const want = forwards(c);
    await tf.setBackend('wasm');
    const got = forwards(c);
    t.ok(maxRelErr(got.y, want.y) < 1e-5, `native ${name}: conv2d max relative error ${maxRelErr(got.y, want.y).toExponential(1)}`);
    t.ok(maxRelErr(got.fused, want.fused) < 1e-5, `native ${name}: fused conv2d + bias + relu max relative error ${maxRelErr(got.fused, want.fused).toExponential(1)}`);
  }
});

t.test('native kernels (when built) give the same bits on 1 and 2 threads (a resumed run does not depend on the load)', async (t) => {
  if (!existsSync(addonPath()) || process.env.CASL_NATIVE === '0') {
    t.skip(`native kernels not tested: ${nativeUnavailable()}`);
    return;
  }
  t.teardown(stopNativeKernels);
  const c: Case = { b: 4, h: 32, w: 32, cin: 32, cout: 48, k: 3, s: 2, pad: 1 };
  await tf.setBackend('wasm');
  const dyShape = outShape(c);
  const runs = [1, 2, 1, 2].map((threads) => {
    t.ok(useNativeKernels(threads), `native kernels on ${threads} thread(s)`);
    return { ...gradients(c, dyShape), ...forwards(c) };
  });
  for (const key of ['dW', 'dx', 'y', 'fused'] as const) {
    for (const r of runs.slice(1)) t.ok(Buffer.from(r[key].buffer).equals(Buffer.from(runs[0][key].buffer)), `${key}: identical bits`);
  }
});

t.test('native BatchMatMul (when built) matches the cpu backend: transposes, a broadcast batch, GroupNorm\'s shapes', async (t) => {
  if (!existsSync(addonPath()) || process.env.CASL_NATIVE === '0') {
    t.skip(`native kernels not tested: ${nativeUnavailable()}`);
    return;
  }
  const native = useNativeKernels(2);
  t.ok(native, 'the built addon loads');
  if (!native) return;
  t.teardown(stopNativeKernels);
  // [a shape, b shape, transposeA, transposeB]
  const cases: [number[], number[], boolean, boolean][] = [
    [[8, 1, 4096], [8, 4096, 16], false, false], // per-channel sums: ones · x
    [[8, 4096, 1], [8, 1, 64], false, false], // their gradient's outer product
    [[8, 1, 256], [8, 1, 64], true, false],
    [[8, 64], [64, 64], false, false], // group means
    [[8, 64], [64, 64], false, true],
    [[3, 5, 7], [3, 9, 5], true, true],
    [[3, 7, 5], [1, 5, 9], false, false], // b broadcast over the batch
    [[1, 7, 5], [2, 3, 5, 9], false, false], // a broadcast, rank 4
    [[2, 3, 5, 7], [2, 3, 7, 4], false, false],
  ];
  for (const [as, bs, ta, tb] of cases) {
    const a = tf.tensor(seeded(as.reduce((p, d) => p * d, 1), 7), as);
    const b = tf.tensor(seeded(bs.reduce((p, d) => p * d, 1), 8), bs);
    const run = () => (tf.matMul(a, b, ta, tb).dataSync() as Float32Array).slice();
    await tf.setBackend('cpu');
    const want = run();
    const wantShape = tf.tidy(() => tf.matMul(a, b, ta, tb).shape);
    await tf.setBackend('wasm');
    const got = run();
    t.same(tf.tidy(() => tf.matMul(a, b, ta, tb).shape), wantShape, `${JSON.stringify([as, bs, ta, tb])}: shape`);
    const e = maxRelErr(got, want);
    t.ok(e < 1e-5, `${JSON.stringify([as, bs, ta, tb])}: max relative error ${e.toExponential(1)}`);
    tf.dispose([a, b]);
  }
});

t.test('tf.grads through conv2d agrees across backends (the path training takes)', async (t) => {
  const x0 = seeded(2 * 9 * 9 * 4, 4);
  const w0 = seeded(3 * 3 * 4 * 6, 5);
  const run = () => tf.tidy(() => {
    const x = tf.tensor4d(x0, [2, 9, 9, 4]);
    const w = tf.tensor4d(w0, [3, 3, 4, 6]);
    const [gx, gw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.square(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 1))))([x, w]);
    return [gx.dataSync(), gw.dataSync()].map((d) => Float32Array.from(d));
  }) as unknown as Float32Array[];
  await tf.setBackend('cpu');
  const want = run();
  await tf.setBackend('wasm');
  const got = run();
  t.ok(maxRelErr(got[0], want[0]) < 1e-5, 'input gradient');
  t.ok(maxRelErr(got[1], want[1]) < 1e-5, 'filter gradient');
});

t.test('every kernel of a tiny-fcos training step exists on wasm', async (t) => {
  await tf.setBackend('cpu');
  // The smallest input tiny-fcos takes: the kernels a step runs do not depend on the size.
  const cfg = modelConfig('tiny-fcos', { inputSize: 32 });
  const det = createDetector(cfg, { seed: 1 });
  const images = tf.randomUniform([2, 32, 32, 3]) as tf.Tensor4D;
  const gt = [{ boxes: [[2, 3, 20, 25]], labels: [0] }, { boxes: [[5, 5, 10, 15], [15, 2, 30, 30]], labels: [0, 0] }];
  const prof = await tf.profile(() => {
    const { grads, loss } = lossAndGrads(det, { images, gt });
    tf.dispose([...grads.values(), ...loss]);
  });
  const used = [...new Set(prof.kernelNames)].sort();
  t.ok(used.includes('Conv2DBackpropFilter') && used.includes('Conv2DBackpropInput'), 'the step was recorded (it backpropagates through convs)');
  // tf.profile also records op scopes (fusedConv2d__op, custom gradients); only kernels matter here.
  const kernels = used.filter((k) => tf.getKernel(k, 'cpu'));
  const missing = kernels.filter((k) => !tf.getKernel(k, 'wasm'));
  t.same(missing, [], `wasm has all ${kernels.length} kernels: ${kernels.join(' ')}`);
  images.dispose();
  disposeDetector(det);
  await tf.setBackend('wasm');
});
