// The port against an independent PyTorch implementation of the same spec:
// ../shared/parity/tiny-fcos-k1 holds its weights (after 2000 training steps),
// a fixed input, every intermediate tensor, the targets, the loss terms and
// image 0's detections. Everything must agree within 1e-4 (relative for
// features and outputs, absolute for the losses), on the wasm backend.
import t from 'tap';
import { existsSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { PARITY_DIR as DIR, parityBatch, useTestBackend } from './model-helpers.js';
import { modelConfig } from '../src/model/config.js';
import { createDetector, forward } from '../src/model/detector.js';
import { loadTorchWeights, readF32, readParityManifest } from '../src/model/torch-import.js';
import { makePoints } from '../src/model/points.js';
import { fcosTargets } from '../src/model/targets.js';
import { fcosLoss } from '../src/model/loss.js';
import { postprocess } from '../src/model/postprocess.js';

const TOL = 1e-4;

/** max |a − b| / max(|b|max, 1): relative to the tensor's scale, so near-zero entries don't blow up. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  scale = Math.max(scale, 1);
  for (let i = 0; i < b.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / scale);
  return worst;
}

if (!existsSync(path.join(DIR, 'manifest.json'))) {
  t.fail(`parity bundle not found at ${DIR}: set CASL_PARITY_DIR to the tiny-fcos-k1 bundle`);
} else {
  t.test('tiny-fcos matches the PyTorch reference', async (t) => {
    const backend = await useTestBackend();
    t.equal(backend, 'wasm', 'parity runs on the wasm backend');
    const man = readParityManifest(DIR);
    const ref = (name: string) => readF32(path.join(DIR, `${name}.f32`));
    const cfg = modelConfig('tiny-fcos', { numClasses: man.K, inputSize: man.S });
    const det = createDetector(cfg);
    loadTorchWeights(det, DIR);
    const { images: x, gt } = parityBatch(DIR, man.B, man.S);
    const out = forward(det, x, { features: true });

    const check = async (name: string, tensor: tf.Tensor) => {
      const want = man.tensors.find((m) => m.name === name)!;
      t.same(tensor.shape.filter((d) => d !== 1), want.shape.filter((d) => d !== 1), `${name} shape`);
      const err = relErr(await tensor.data(), ref(name));
      t.ok(err < TOL, `${name}: max relative error ${err.toExponential(2)} < ${TOL}`);
    };
    for (const [i, c] of out.features!.C.entries()) await check(`C${i + 2}`, c);
    for (const [i, p] of out.features!.P.entries()) await check(`P${i + 3}`, p);
    await check('cls_logits', out.cls);
    await check('reg_ltrb', out.box);
    await check('ctr_logits', out.ctr);

    const points = makePoints(cfg);
    t.same(Array.from(points.data), Array.from(ref('points')), 'points are identical');

    const targets = fcosTargets(points, gt, cfg.centerRadius);
    t.same(Array.from(targets.pos), Array.from(ref('target_pos')), 'positive locations are identical');
    t.equal(targets.numPos, man.loss.num_pos, `N_pos = ${man.loss.num_pos}`);
    const [wantLabels, wantBoxes, wantCtr] = [ref('target_labels'), ref('target_boxes'), ref('target_ctr')];
    let labelsOk = true;
    let boxErr = 0;
    for (let o = 0; o < targets.pos.length; o++) {
      if (!targets.pos[o]) continue;
      labelsOk &&= targets.labels[o] === wantLabels[o];
      for (let k = 0; k < 4; k++) boxErr = Math.max(boxErr, Math.abs(targets.boxes[4 * o + k] - wantBoxes[4 * o + k]));
    }
    t.ok(labelsOk, 'target labels agree on positives');
    t.ok(boxErr < TOL, `target boxes agree on positives (max |Δ| ${boxErr.toExponential(2)})`);
    t.ok(relErr(targets.ctr, wantCtr) < TOL, `centerness targets (max error ${relErr(targets.ctr, wantCtr).toExponential(2)})`);

    const loss = fcosLoss(out, targets, points);
    for (const k of ['cls', 'reg', 'ctr', 'total'] as const) {
      const got = (await loss[k].data())[0];
      t.ok(Math.abs(got - man.loss[k]) < TOL, `loss ${k}: ${got.toFixed(6)} vs ${man.loss[k].toFixed(6)}`);
    }

    const dets = await postprocess(out, points, cfg.inputSize, cfg.inference);
    const want = man.detections_img0;
    t.equal(dets[0].scores.length, want.scores.length, `image 0: ${want.scores.length} detections`);
    let scoreErr = 0, detBoxErr = 0, labelsSame = true;
    for (let i = 0; i < Math.min(dets[0].scores.length, want.scores.length); i++) {
      scoreErr = Math.max(scoreErr, Math.abs(dets[0].scores[i] - want.scores[i]));
      for (let k = 0; k < 4; k++) detBoxErr = Math.max(detBoxErr, Math.abs(dets[0].boxes[4 * i + k] - want.boxes[i][k]) / man.S);
      labelsSame &&= dets[0].labels[i] === want.labels[i];
    }
    t.ok(scoreErr < TOL, `detection scores, in order (max |Δ| ${scoreErr.toExponential(2)})`);
    t.ok(detBoxErr < TOL, `detection boxes, in order (max |Δ|/S ${detBoxErr.toExponential(2)})`);
    t.ok(labelsSame, 'detection labels');
    tf.dispose([x, out.cls, out.box, out.ctr, ...out.features!.C, ...out.features!.P, loss.total, loss.cls, loss.reg, loss.ctr]);
  });
}
