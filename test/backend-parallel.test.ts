// Data parallelism (src/model/backend/parallel.ts): a training step split
// across this thread and a worker is the full batch's step (same loss terms,
// same updated weights), including an image without boxes and uneven chunks;
// inference split the same way gives the same detections.
import t from 'tap';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/model/backend/index.js';
import { DataParallel, splitBatch } from '../src/model/backend/parallel.js';
import { modelConfig } from '../src/model/config.js';
import { createDetector, disposeDetector } from '../src/model/detector.js';
import { Optimizer, SGD_DEFAULTS } from '../src/model/optim.js';
import { trainStep } from '../src/model/train-step.js';
import { predict } from '../src/model/predict.js';

t.test('splitBatch: contiguous, as even as possible, never empty', async (t) => {
  t.same(splitBatch(8, 2), [[0, 4], [4, 8]]);
  t.same(splitBatch(5, 2), [[0, 3], [3, 5]]);
  t.same(splitBatch(1, 2), [[0, 1]]);
  t.same(splitBatch(7, 3), [[0, 3], [3, 5], [5, 7]]);
});

t.test('a data-parallel step is the full-batch step', async (t) => {
  await initBackend('wasm', { log: () => {} });
  const cfg = modelConfig('tiny-fcos', { inputSize: 64 });
  const single = createDetector(cfg, { seed: 5 });
  const split = createDetector(cfg, { seed: 5 });
  const images = tf.randomUniform([3, 64, 64, 3], 0, 1, 'float32', 2) as tf.Tensor4D;
  // Image 1 has no boxes; 3 images over 2 replicas makes uneven chunks (2 + 1).
  const gt = [
    { boxes: [[4, 6, 40, 50], [30, 20, 60, 62]], labels: [0, 0] },
    { boxes: [], labels: [] },
    { boxes: [[10, 10, 28, 36]], labels: [0] },
  ];
  const dp = await DataParallel.start(split, 2);
  t.teardown(() => dp.close());
  const optA = new Optimizer(SGD_DEFAULTS);
  const optB = new Optimizer(SGD_DEFAULTS);
  for (let step = 0; step < 2; step++) {
    const a = await trainStep(single, optA, { images, gt }, { lr: 0.01 });
    const b = await dp.trainStep(optB, { images, gt }, { lr: 0.01 });
    t.equal(b.numPos, a.numPos, `step ${step}: N_pos`);
    for (const k of ['total', 'cls', 'reg', 'ctr'] as const) {
      t.ok(Math.abs(a[k] - b[k]) < 1e-5, `step ${step}: loss ${k} ${b[k].toFixed(6)} vs ${a[k].toFixed(6)}`);
    }
    let worst = 0;
    for (const [name, v] of single.params) {
      const x = v.dataSync();
      const y = split.params.get(name)!.dataSync();
      for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]));
    }
    t.ok(worst < 1e-6, `step ${step}: weights agree after the update (max |Δ| ${worst.toExponential(1)})`);
  }
  const want = await predict(single, images);
  const got = await dp.predict(images);
  t.equal(got.length, 3, 'one result per image');
  for (let i = 0; i < 3; i++) {
    t.equal(got[i].scores.length, want[i].scores.length, `image ${i}: as many detections`);
    let err = 0;
    for (let j = 0; j < want[i].scores.length; j++) err = Math.max(err, Math.abs(got[i].scores[j] - want[i].scores[j]));
    t.ok(err < 1e-5, `image ${i}: same scores`);
  }
  images.dispose();
  optA.dispose();
  optB.dispose();
  disposeDetector(single);
  disposeDetector(split);
});
