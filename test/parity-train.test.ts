// Backward pass and optimiser against the PyTorch reference: from the parity
// bundle's weights, on its fixed batch, every parameter's gradient norm and
// the loss after one and two SGD steps (lr 0.01, momentum 0.9, wd 1e-4).
// The reference figures were made by test/parity-train-step.py.
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { PARITY_DIR, parityBatch, useTrainBackend } from './model-helpers.js';
import { modelConfig } from '../src/model/config.js';
import { createDetector, disposeDetector } from '../src/model/detector.js';
import { loadTorchWeights } from '../src/model/torch-import.js';
import { Optimizer, SGD_DEFAULTS } from '../src/model/optim.js';
import { lossAndGrads, trainStep } from '../src/model/train-step.js';

const want = JSON.parse(readFileSync(path.join(import.meta.dirname ?? '.', 'parity-train-step.json'), 'utf8')) as {
  loss: number[];
  grad_norms: Record<string, number>;
};

if (!existsSync(path.join(PARITY_DIR, 'manifest.json'))) {
  t.fail(`parity bundle not found at ${PARITY_DIR}: set CASL_PARITY_DIR to the tiny-fcos-k1 bundle`);
} else {
  t.test('gradients and SGD steps match PyTorch', async (t) => {
    const backend = await useTrainBackend();
    const det = createDetector(modelConfig('tiny-fcos'));
    loadTorchWeights(det, PARITY_DIR);
    const batch = parityBatch(PARITY_DIR, 2, 128);
    const { grads, loss } = lossAndGrads(det, batch);
    t.equal(grads.size, det.params.size, 'every parameter has a gradient');
    // Gradient norms sum thousands of float32 products in another order than
    // PyTorch: 1e-3 relative is what reduction order allows, not slack for errors.
    let worst = 0;
    let worstName = '';
    for (const [name, g] of grads) {
      const norm = Math.sqrt(tf.tidy(() => tf.sum(tf.square(g))).dataSync()[0]);
      const err = Math.abs(norm - want.grad_norms[name]) / want.grad_norms[name];
      if (err > worst) [worst, worstName] = [err, name];
    }
    t.ok(worst < 1e-3, `gradient norms on ${backend}: worst relative error ${worst.toExponential(2)} (${worstName})`);
    tf.dispose([...grads.values(), ...loss]);
    const opt = new Optimizer(SGD_DEFAULTS);
    const losses: number[] = [];
    for (let i = 0; i < 3; i++) losses.push((await trainStep(det, opt, batch, { lr: 0.01 })).total);
    losses.forEach((l, i) => t.ok(Math.abs(l - want.loss[i]) < 1e-4, `loss after ${i} SGD steps ${l.toFixed(6)} vs ${want.loss[i].toFixed(6)}`));
    opt.dispose();
    disposeDetector(det);
    batch.images.dispose();
  });
}
