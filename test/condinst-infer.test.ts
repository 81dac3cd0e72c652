// CondInst masks on their way out: a view mask mapped back to the original
// image through a flip and a scale, and casl infer's stage emitting each
// instance's mask as compressed RLE that decodes to the predicted mask.
import t from 'tap';
import _ from 'highland';
import * as tf from '@tensorflow/tfjs-core';
import { GeometricTransform } from '../src/augment/geometric.js';
import { AugmentTransform } from '../src/augment/transform.js';
import { decodeMask, rleFromJson } from '../src/geometry/mask.js';
import type { DecodedRecord } from '../src/io/decode.js';
import { toFloat32 } from '../src/io/decode.js';
import { inferImages } from '../src/label/infer.js';
import { modelConfig } from '../src/model/config.js';
import { createDetector, disposeDetector, disposeOutput, forward } from '../src/model/detector.js';
import { makePoints } from '../src/model/points.js';
import { postprocess } from '../src/model/postprocess.js';
import { type MaskLogits, maskToOriginal, predictMasks, viewMask } from '../src/model/condinst/predict-masks.js';
import { seededRandom } from '../src/model/params.js';
import type { PredictionRecord } from '../src/records.js';
import { isErrorRecord } from '../src/records.js';
import { useTestBackend } from './model-helpers.js';

t.before(async () => {
  await useTestBackend();
});

/** Original pixel (x, y) takes the view pixel its centre maps into (view = original·s + t per axis). */
function expectedBack(view: Uint8Array, V: number, a: { sx: number; tx: number; sy: number; ty: number }, w: number, h: number): Uint8Array {
  const out = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const u = Math.floor((x + 0.5) * a.sx + a.tx), v = Math.floor((y + 0.5) * a.sy + a.ty);
      out[y * w + x] = u >= 0 && u < V && v >= 0 && v < V ? view[v * V + u] : 0;
    }
  }
  return out;
}

t.test('mask logits: bilinear to S and the threshold as tfjs would, then back through flip and scale to original pixels', async (t) => {
  // 20×10 letterboxed to 34 (scale 1.7: no pixel centre lands on a view pixel edge), then mirrored.
  const W = 20, H = 10, V = 34;
  const r = seededRandom(5);
  const m: MaskLogits = { data: Float32Array.from({ length: 5 * 5 }, () => 4 * r() - 2), h: 5, w: 5, S: V, cut: 0 };
  const view = viewMask(m);
  const ref = tf.tidy(() => tf.greater(tf.image.resizeBilinear(tf.tensor4d(m.data, [1, 5, 5, 1]), [V, V], false, true), 0).dataSync());
  t.same(Array.from(view), Array.from(ref, Number), 'the S × S mask is tfjs resizeBilinear (half-pixel centres) > cut');
  const tr = new AugmentTransform(GeometricTransform.letterbox(W, H, V).then(GeometricTransform.hflip(V, V)));
  t.same(tr.geometric.affine, { sx: -1.7, tx: 34, sy: 1.7, ty: 0 });
  const rle = maskToOriginal(m, tr.inverse(), W, H);
  t.same(rle.size, [H, W], 'COCO size is [h, w] of the original');
  t.type(rle.counts, 'string', 'compressed counts');
  const back = decodeMask(rleFromJson(rle));
  const want = expectedBack(view, V, tr.geometric.affine, W, H);
  t.same(Array.from(back), Array.from(want));
  t.ok(want.some((v) => v === 1) && want.some((v) => v === 0), 'the case has both inside and outside pixels');
  // Mirrored: original column x shows view column ⌊33.15 − 1.7x⌋.
  const unflipped = expectedBack(view, V, { sx: 1.7, tx: 0, sy: 1.7, ty: 0 }, W, H);
  t.not(Array.from(back).join(), Array.from(unflipped).join(), 'the flip is undone, not ignored');
  t.throws(() => maskToOriginal(m, tr.inverse(), W + 1, H), /maps to 20×10/);
});

t.test('casl infer with tiny-condinst: every instance has RLE that decodes to its predicted mask', async (t) => {
  const cfg = modelConfig('tiny-condinst', { inputSize: 64 });
  const det = createDetector(cfg, { seed: 3 });
  const S = 64;
  // Scale 64/128: no original pixel centre lands on a view pixel edge, so the expectation has no ties.
  const W = 128, H = 80;
  const r = seededRandom(11);
  const image = { data: Uint8Array.from({ length: W * H * 3 }, () => Math.floor(r() * 256)), width: W, height: H };
  const rec: DecodedRecord = { image_id: 7, file_name: 'x.png', width: W, height: H, image, letterbox: { scale: 1, offsetX: 0, offsetY: 0 } };
  const out = await new Promise<(PredictionRecord | unknown)[]>((resolve, reject) => {
    _([rec]).through(inferImages({ detector: det, batchSize: 2, aug: 'none', views: 1, seed: 0, meta: {} })).errors(reject).toArray(resolve);
  });
  t.equal(out.length, 1);
  t.notOk(isErrorRecord(out[0]), JSON.stringify(out[0]).slice(0, 200));
  const pred = out[0] as PredictionRecord;
  t.ok(pred.instances.length > 0, `${pred.instances.length} instances (random weights score ≈ 0.07 > 0.05)`);

  // The same forward by hand: view masks, then the letterbox's affine back to 128×80.
  const lb = GeometricTransform.letterbox(W, H, S);
  const x = new Float32Array(S * S * 3);
  toFloat32(lb.applyImage(image), x, 0);
  const xt = tf.tensor4d(x, [1, S, S, 3]);
  const o = forward(det, xt);
  const points = makePoints(cfg, S);
  const dets = await postprocess(o, points, S, cfg.inference);
  const masks = await predictMasks(det.params, o, dets, points, S, cfg.mask!);
  disposeOutput(o);
  xt.dispose();
  // Detections whose box lies in the letterbox padding collapse when clipped to the image and are dropped.
  const kept: number[] = [];
  for (let j = 0; j < dets[0].scores.length; j++) {
    const [x1, y1, x2, y2] = lb.inverse().mapBox(Array.from(dets[0].boxes.subarray(4 * j, 4 * j + 4)));
    if (Math.min(x2, W) > Math.max(x1, 0) && Math.min(y2, H) > Math.max(y1, 0)) kept.push(j);
  }
  t.equal(kept.length, pred.instances.length);
  t.ok(kept.length < dets[0].scores.length, 'the case includes detections dropped in the padding');
  let nonEmpty = 0;
  pred.instances.forEach((inst, i) => {
    t.ok(inst.segmentation, `instance ${i} has a segmentation`);
    t.same(inst.segmentation!.size, [H, W]);
    const got = decodeMask(rleFromJson(inst.segmentation!));
    const want = expectedBack(viewMask(masks[0][kept[i]]), S, lb.affine, W, H);
    const diff = got.reduce((s, v, k) => s + (v !== want[k] ? 1 : 0), 0);
    if (diff) t.fail(`instance ${i}: RLE differs from the predicted mask in ${diff} pixels of ${want.reduce((s, v) => s + v, 0)}; score ${inst.score}`);
    if (want.some((v) => v)) nonEmpty++;
  });
  t.pass(`${pred.instances.length} RLEs checked, ${nonEmpty} non-empty`);
  disposeDetector(det);
});
