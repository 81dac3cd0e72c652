// Evaluation cases small enough to work out by hand.
import t, { type Test } from 'tap';
import { indexGroundTruth, type GroundTruth } from '../src/eval/ground-truth.js';
import { evaluateResults, DetectionError } from '../src/eval/detections.js';
import type { IouType, Summary } from '../src/eval/evaluator.js';
import { numpySum, pairwiseSum } from '../src/eval/params.js';
import { rleToJson, segmentationToRle } from '../src/geometry/mask.js';

type Box = [number, number, number, number];
interface GtAnn { image_id: number; bbox: Box; category_id?: number; iscrowd?: number; id?: number }
interface Det { image_id: number; bbox?: Box; score: number; category_id?: number; segmentation?: unknown }

/** Precision is tp / (tp + fp + np.spacing(1)) in pycocotools, so a perfect 1 is 1 - 2.2e-16. */
function near(t: Test, actual: number, expected: number, msg?: string): void {
  t.ok(Math.abs(actual - expected) < 1e-12, `${msg ?? ''} ${actual} ≈ ${expected}`.trim());
}

const boxPoly = ([x, y, w, h]: Box) => [[x, y, x, y + h, x + w, y + h, x + w, y]];

function groundTruth(anns: GtAnn[], images = [1, 2, 3], opts: { agnostic?: boolean } = {}): GroundTruth {
  return indexGroundTruth({
    images: images.map((id) => ({ id, width: 640, height: 480 })),
    categories: [{ id: 1, name: 'cat' }, { id: 2, name: 'dog' }],
    annotations: anns.map((a, i) => ({
      id: a.id ?? i + 1,
      image_id: a.image_id,
      category_id: a.category_id ?? 1,
      bbox: a.bbox,
      area: a.bbox[2] * a.bbox[3],
      iscrowd: a.iscrowd ?? 0,
      segmentation: boxPoly(a.bbox),
    })),
  }, 'hand.json', opts);
}

function evaluate(gt: GroundTruth, dets: Det[], iouType: IouType = 'bbox'): Summary & { perCategory: number[] } {
  const r = evaluateResults(gt, dets.map((d) => ({ category_id: 1, ...d })), iouType, 'dets.json');
  return { ...r.summary, perCategory: r.perCategory.map((c) => c.AP) };
}

const SMALL: Box = [10, 10, 20, 20]; // area 400 < 32²
const MEDIUM: Box = [100, 100, 50, 50]; // 2500
const LARGE: Box = [200, 200, 150, 150]; // 22500 > 96²
const FAR: Box = [500, 400, 30, 30];

t.test('a perfect detector scores 1 (boxes and masks)', async (t) => {
  const gt = groundTruth([{ image_id: 1, bbox: SMALL }, { image_id: 2, bbox: MEDIUM }, { image_id: 2, bbox: LARGE }]);
  const dets: Det[] = [
    { image_id: 1, bbox: SMALL, score: 0.3 },
    { image_id: 2, bbox: MEDIUM, score: 0.9 },
    { image_id: 2, bbox: LARGE, score: 0.8 },
  ];
  for (const iouType of ['bbox', 'segm'] as const) {
    const withMasks = dets.map((d) => ({
      image_id: d.image_id, score: d.score, category_id: 1,
      segmentation: rleToJson(segmentationToRle(boxPoly(d.bbox!), 480, 640)),
    }));
    const s = evaluate(gt, iouType === 'bbox' ? dets : withMasks, iouType);
    for (const k of ['AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'AR10', 'AR100', 'ARs', 'ARm', 'ARl'] as const) near(t, s[k], 1, `${iouType} ${k}`);
    // One detection per image finds 2 of the 3 objects.
    t.ok(Math.abs(s.AR1 - 2 / 3) < 1e-12, `${iouType} AR1 = 2/3`);
    near(t, s.perCategory[0], 1);
    t.equal(s.perCategory[1], -1, 'a category without ground truth is -1');
  }
});

t.test('one false positive above a true positive halves precision', async (t) => {
  const gt = groundTruth([{ image_id: 1, bbox: MEDIUM }]);
  const s = evaluate(gt, [{ image_id: 1, bbox: FAR, score: 0.9 }, { image_id: 1, bbox: MEDIUM, score: 0.8 }]);
  near(t, s.AP, 0.5);
  near(t, s.AP50, 0.5);
  near(t, s.AR100, 1);
  near(t, s.AR1, 0, 'the best-scored detection is the false one');
  near(t, s.APs, -1, 'no small ground truth: -1');
  near(t, s.ARl, -1);
});

t.test('IoU thresholds: a box at IoU 0.58 counts at .50 and .55 only', async (t) => {
  const gt = groundTruth([{ image_id: 1, bbox: [0, 0, 100, 100] }]);
  // Inside the ground truth: IoU = 5800 / 10000.
  const s = evaluate(gt, [{ image_id: 1, bbox: [0, 0, 100, 58], score: 0.9 }]);
  near(t, s.AP50, 1);
  near(t, s.AP75, 0);
  near(t, s.AP, 0.2, '2 of 10 thresholds');
});

t.test('crowd regions: detections inside them are neither true nor false', async (t) => {
  const anns: GtAnn[] = [{ image_id: 1, bbox: MEDIUM }, { image_id: 1, bbox: [300, 0, 300, 300], iscrowd: 1 }];
  const dets: Det[] = [
    { image_id: 1, bbox: [310, 10, 60, 60], score: 0.95 },
    { image_id: 1, bbox: [400, 100, 60, 60], score: 0.94 },
    { image_id: 1, bbox: MEDIUM, score: 0.5 },
  ];
  const crowd = evaluate(groundTruth(anns), dets);
  near(t, crowd.AP, 1, 'both detections in the crowd region are ignored (a crowd matches many)');
  near(t, crowd.AR100, 1, 'the crowd is not an object to recall');
  const notCrowd = evaluate(groundTruth(anns.map((a) => ({ ...a, iscrowd: 0 }))), dets);
  t.ok(notCrowd.AP < 0.5, `without iscrowd the same detections are false positives (AP ${notCrowd.AP})`);
});

t.test('ties in score keep the input order (a stable sort)', async (t) => {
  const gt = groundTruth([{ image_id: 1, bbox: MEDIUM }]);
  const fp: Det = { image_id: 1, bbox: FAR, score: 0.5 };
  const tp: Det = { image_id: 1, bbox: MEDIUM, score: 0.5 };
  near(t, evaluate(gt, [fp, tp]).AP, 0.5, 'false positive listed first ranks first');
  near(t, evaluate(gt, [tp, fp]).AP, 1, 'true positive listed first ranks first');
  // Across images, ties rank by image id (the concatenation order of accumulate()).
  const gt2 = groundTruth([{ image_id: 2, bbox: MEDIUM }]);
  near(t, evaluate(gt2, [{ image_id: 2, bbox: MEDIUM, score: 0.5 }, { image_id: 1, bbox: FAR, score: 0.5 }]).AP, 0.5);
  near(t, evaluate(gt2, [{ image_id: 2, bbox: MEDIUM, score: 0.5 }, { image_id: 3, bbox: FAR, score: 0.5 }]).AP, 1);
});

t.test('empty detections, and images with ground truth but no detections', async (t) => {
  const gt = groundTruth([{ image_id: 1, bbox: MEDIUM }, { image_id: 2, bbox: MEDIUM }]);
  const none = evaluate(gt, []);
  near(t, none.AP, 0);
  near(t, none.AR100, 0);
  near(t, none.APs, -1);
  const half = evaluate(gt, [{ image_id: 1, bbox: MEDIUM, score: 0.9 }]);
  near(t, half.AR100, 0.5);
  near(t, half.AP, 51 / 101, 'precision 1 up to recall .50: 51 of the 101 recall thresholds');
});

t.test('detections on an image without ground truth are false positives', async (t) => {
  const gt = groundTruth([{ image_id: 1, bbox: MEDIUM }]);
  const s = evaluate(gt, [{ image_id: 1, bbox: MEDIUM, score: 0.5 }, { image_id: 3, bbox: MEDIUM, score: 0.9 }]);
  near(t, s.AP, 0.5);
});

t.test('area ranges: unmatched detections outside the range are ignored in it', async (t) => {
  const gt = groundTruth([{ image_id: 1, bbox: SMALL }]);
  const s = evaluate(gt, [{ image_id: 1, bbox: LARGE, score: 0.9 }, { image_id: 1, bbox: SMALL, score: 0.5 }]);
  near(t, s.AP, 0.5, 'over all areas the large false positive counts');
  near(t, s.APs, 1, 'among small objects it is ignored');
  near(t, s.APm, -1);
  near(t, s.APl, -1);
});

t.test('only the 100 best-scored detections of an image are matched', async (t) => {
  const gt = groundTruth([{ image_id: 1, bbox: MEDIUM }]);
  const dets: Det[] = Array.from({ length: 100 }, (_, i) => ({ image_id: 1, bbox: FAR, score: 0.9 - i * 1e-4 }));
  near(t, evaluate(gt, [...dets, { image_id: 1, bbox: MEDIUM, score: 0.1 }]).AR100, 0, 'the 101st is cut before matching');
  near(t, evaluate(gt, [...dets.slice(1), { image_id: 1, bbox: MEDIUM, score: 0.1 }]).AR100, 1);
});

t.test('agnostic: every category becomes one', async (t) => {
  const anns: GtAnn[] = [{ image_id: 1, bbox: MEDIUM, category_id: 1 }];
  const dets: Det[] = [{ image_id: 1, bbox: MEDIUM, score: 0.9, category_id: 2 }];
  near(t, evaluate(groundTruth(anns), dets).AP, 0, 'class-specific: a dog is not a cat');
  const agn = evaluate(groundTruth(anns, [1, 2, 3], { agnostic: true }), dets);
  near(t, agn.AP, 1, 'agnostic: an object is an object');
  near(t, agn.perCategory[0], 1);
});

t.test('bad detections are errors that say which one and what to do', async (t) => {
  const gt = groundTruth([{ image_id: 1, bbox: MEDIUM }]);
  t.throws(() => evaluate(gt, [{ image_id: 1, bbox: MEDIUM, score: 0.9 }, { image_id: 7, bbox: MEDIUM, score: 0.9 }]), {
    name: 'DetectionError', message: /detection 1: image_id 7 is not an image of hand\.json/,
  });
  t.throws(() => evaluate(gt, [{ image_id: 1, bbox: [0, 0, -3, 4], score: 0.9 }]), { message: /detection 0: bad box \[0,0,-3,4\]/ });
  t.throws(() => evaluate(gt, [{ image_id: 1, bbox: MEDIUM, score: Number.NaN }]), { message: /"score" must be a finite number/ });
  const wrongSize = rleToJson(segmentationToRle(boxPoly(MEDIUM), 640, 480));
  t.throws(() => evaluate(gt, [{ image_id: 1, score: 0.9, segmentation: wrongSize }], 'segm'), {
    message: /detection 0: mask size \[640, 480\] differs from image 1's \[height, width\] = \[480, 640\]/,
  });
  t.throws(() => evaluate(gt, [{ image_id: 1, score: 0.9, segmentation: { size: [480, 640], counts: '3' } }], 'segm'), {
    message: /mask counts cover \d+ pixels/,
  });
  t.ok(new DetectionError('x') instanceof Error);
});

t.test("np.mean's summation: pairwise within 8192-value blocks, blocks added in order", async (t) => {
  // np.add.reduce of these arrays, printed by numpy 1.24 (repr, so every bit): 12,120 values is T × R × K for 12 categories.
  const numpy: [number, number][] = [[8192, 4096.130108923753], [12120, 6060.616368542021], [20000, 9999.091336064754]];
  for (const [n, sum] of numpy) {
    const x = Float64Array.from({ length: n }, (_, i) => ((i * 7919) % 10007) / 10007);
    t.equal(numpySum(x), sum, `${n} values`);
    if (n > 8192) t.not(pairwiseSum(x), sum, `${n} values: one pairwise sum over the whole array is off in the last bit`);
  }
});
