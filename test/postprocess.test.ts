// Post-processing on hand-made scores and boxes: threshold, per-level top-k,
// decoding and clipping, class-wise NMS, max detections, and the way back
// to original-image pixels through the letterbox.
import t from 'tap';
import * as tf from '@tensorflow/tfjs-core';
import { useTestBackend } from './model-helpers.js';
import type { InferenceConfig } from '../src/model/config.js';
import type { Points } from '../src/model/points.js';
import { detectionScores, nms, postprocessImage, toOriginal } from '../src/model/postprocess.js';
import { toInstances } from '../src/model/predict.js';

const inf: InferenceConfig = { scoreThreshold: 0.05, topkPerLevel: 1000, nmsIou: 0.6, maxDetections: 100 };

t.test('score = sqrt(σ(cls) · σ(ctr))', async (t) => {
  await useTestBackend();
  const s = detectionScores(tf.tensor3d([0, 2, -1], [1, 3, 1]), tf.tensor3d([0, -1, 3], [1, 3, 1])).dataSync();
  const sig = (x: number) => 1 / (1 + Math.exp(-x));
  [[0, 0], [2, -1], [-1, 3]].forEach(([a, b], i) => t.ok(Math.abs(s[i] - Math.sqrt(sig(a) * sig(b))) < 1e-6));
});

t.test('NMS: best first, class-wise, strictly above the IoU threshold', async (t) => {
  const boxes = [
    0, 0, 10, 10, // 0: best
    0, 0, 10, 7, // 1: IoU 0.7 with 0 → suppressed
    0, 0, 10, 6, // 2: IoU exactly 0.6 with 0 → kept (and 0.857 with 1, which is gone)
    0, 0, 10, 10, // 3: same box as 0, other class → kept
    20, 20, 30, 30, // 4: disjoint
  ];
  t.same(nms(boxes, [0.9, 0.8, 0.7, 0.6, 0.5], [0, 0, 0, 1, 0], 0.6, 100), [0, 2, 3, 4]);
  t.same(nms(boxes, [0.9, 0.8, 0.7, 0.6, 0.5], [0, 0, 0, 1, 0], 0.6, 2), [0, 2], 'at most max');
  t.same(nms(boxes, [0.1, 0.8, 0.7, 0.6, 0.5], [0, 0, 0, 0, 0], 0.6, 100), [1, 4], 'order follows the scores: 1 now suppresses 2 (IoU 0.86), 3 and 0 (0.7)');
});

// Two levels: level 0 has locations 0–2, level 1 has location 3. K = 2.
const points: Points = {
  data: new Float32Array([4, 4, 8, 0, 32, 12, 4, 8, 0, 32, 20, 4, 8, 0, 32, 8, 8, 16, 32, 64]),
  L: 4,
  levelStart: [0, 3, 4],
};

t.test('threshold, per-level top-k, decoding and clipping', async (t) => {
  // scores [L, K]
  const scores = new Float32Array([0.05, 0.9, 0.3, 0.04, 0.2, 0.1, 0.06, 0]);
  const box = new Float32Array([2, 2, 2, 2, 100, 1, 1, 1, 1, 1, 1, 1, 4, 4, 4, 4]);
  const d = postprocessImage(scores, box, points, 2, 32, inf);
  t.same(Array.from(d.scores).map((v) => +v.toFixed(2)), [0.9, 0.3, 0.2, 0.1, 0.06], 'score 0.05 is not above the threshold; 0.04 neither');
  t.same(Array.from(d.labels), [1, 0, 0, 1, 0]);
  t.same(Array.from(d.boxes.subarray(0, 4)), [2, 2, 6, 6], 'location (4, 4), ltrb 2 → [2, 2, 6, 6]');
  t.same(Array.from(d.boxes.subarray(4, 8)), [0, 3, 13, 5], 'x − 100 clips to 0');
  const top1 = postprocessImage(scores, box, points, 2, 32, { ...inf, topkPerLevel: 2 });
  t.same(Array.from(top1.scores).map((v) => +v.toFixed(2)), [0.9, 0.3, 0.06], 'the best 2 of level 0, plus level 1');
});

t.test('letterbox inverse: view = original · scale + offset', async (t) => {
  const d = {
    boxes: new Float32Array([10, 20, 50, 60, 100, 100, 128, 128, 0, 0, 300, 300]),
    scores: new Float32Array([0.9, 0.5, 0.4]),
    labels: new Int32Array([0, 0, 2]),
  };
  // A 320 × 160 image letterboxed to 128: scale 0.4, the image fills y ∈ [0, 64).
  const o = toOriginal(d, { scale: 0.4, offsetX: 0, offsetY: 0 }, 320, 160);
  t.same(Array.from(o.boxes.subarray(0, 4)).map((v) => +v.toFixed(4)), [25, 50, 125, 150]);
  t.equal(o.scores.length, 2, 'the box lying wholly in the padding covers no pixel of the image and is dropped');
  t.same(Array.from(o.boxes.subarray(4, 8)), [0, 0, 320, 160], 'clipped to the image');
  const shifted = toOriginal(d, { scale: 2, offsetX: 4, offsetY: 8 }, 100, 100);
  t.same(Array.from(shifted.boxes.subarray(0, 4)), [3, 6, 23, 26]);
  t.same(toInstances(o), [
    { bbox: [25, 50, 100, 100], score: d.scores[0], category_id: 1 },
    { bbox: [0, 0, 320, 160], score: d.scores[2], category_id: 3 },
  ].map((i) => ({ ...i, bbox: i.bbox.map((v) => Math.fround(v)) })), 'COCO [x, y, w, h], category = channel + 1');
  t.same(toInstances(o, [7, 8, 9]).map((i) => i.category_id), [7, 9], 'explicit category ids');
});
