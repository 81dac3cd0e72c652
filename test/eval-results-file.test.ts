// The results-file scanner (src/eval/results-file.ts) reads a results JSON
// array from its bytes; whatever it reads must be what JSON.parse reads, its
// fast path or not, and a file that is not JSON must fail as JSON.parse fails.
import t from 'tap';
import { DetectionError, evaluateResults, evaluateResultsBytes } from '../src/eval/detections.js';
import { indexGroundTruth } from '../src/eval/ground-truth.js';
import { syntheticCase, toResults } from '../src/eval/synthetic.js';
import { RleSlab, rleFromJson, type RleView } from '../src/geometry/mask.js';
import { scanResults } from '../src/eval/results-file.js';

const c = syntheticCase({ images: 12, detsPerImage: 15, seed: 3 });
const gt = indexGroundTruth(c.gt, 'gt.json');
const masks = toResults(c.predictions, 'segm') as { image_id: number; segmentation: { size: number[]; counts: string } }[];
const boxes = toResults(c.predictions, 'bbox');

/** What the scanner hands over: each element, and its mask's runs when it parsed them. */
function scan(text: string): { ok: boolean; dets: unknown[]; masks: (number[] | undefined)[] } {
  const slab = new RleSlab();
  const dets: unknown[] = [];
  const views: (RleView | undefined)[] = [];
  const ok = scanResults(Buffer.from(text, 'utf8'), slab, (d, _i, m) => {
    dets.push(d);
    views.push(m);
  });
  return { ok, dets, masks: views.map((v) => (v ? [...v.counts.subarray(v.start, v.end)] : undefined)) };
}

t.test('the usual shape takes the fast path and reads what JSON.parse reads', async (t) => {
  t.ok(masks.some((d) => d.segmentation.counts.includes('\\')), 'some counts strings hold a backslash (escaped in JSON)');
  for (const indent of [undefined, 2, '\t']) {
    const text = JSON.stringify(masks, null, indent);
    const r = scan(text);
    t.ok(r.ok);
    t.equal(r.dets.length, masks.length);
    t.ok(r.masks.every((m) => m !== undefined), 'every mask parsed by the scanner');
    masks.forEach((d, i) => {
      const det = r.dets[i] as Record<string, unknown>;
      if (det.image_id !== d.image_id || det.score !== (d as { score?: number }).score) t.fail(`detection ${i} fields`);
      const expected = [...rleFromJson(d.segmentation as never).counts];
      if (JSON.stringify(r.masks[i]) !== JSON.stringify(expected)) t.fail(`detection ${i} runs`);
    });
    const viaParse = evaluateResults(gt, JSON.parse(text), 'segm', 'x');
    const viaBytes = evaluateResultsBytes(gt, Buffer.from(text), 'segm', 'x');
    t.same(viaBytes.summary, viaParse.summary, `same figures (indent ${JSON.stringify(indent)})`);
    t.same(viaBytes.perCategory, viaParse.perCategory);
  }
  const boxText = JSON.stringify(boxes);
  t.same(evaluateResultsBytes(gt, Buffer.from(boxText), 'bbox', 'x').summary, evaluateResults(gt, boxes, 'bbox', 'x').summary, 'boxes too');
});

t.test('numbers are JSON numbers, read exactly', async (t) => {
  const nums = ['0', '-0', '7', '123456789012345', '1234567890123456789', '0.1', '-2.5e-3', '1E+2', '0.30000000000000004', '5e-324'];
  const text = `[${nums.map((n) => `{"image_id": 1000, "category_id": 1, "score": ${n}, "bbox": [${n}, 1, 2, 3]}`).join(',')}]`;
  const r = scan(text);
  t.ok(r.ok);
  r.dets.forEach((d, i) => {
    t.ok(Object.is((d as { score: number }).score, JSON.parse(nums[i])), `${nums[i]}`);
    t.ok(Object.is((d as { bbox: number[] }).bbox[0], JSON.parse(nums[i])));
  });
  for (const bad of ['01', '1.', '.5', '+1', '-', '1e', '0x10']) {
    t.notOk(scan(`[{"image_id": 1, "score": ${bad}}]`).ok, `${bad} is not JSON`);
  }
});

t.test('other shapes are read by JSON.parse, element by element', async (t) => {
  const rle = masks[0].segmentation;
  const uncompressed = { size: rle.size, counts: [...rleFromJson(rle as never).counts] };
  const unicode = { size: rle.size, counts: rle.counts.replace(/[0-9]/, (ch) => `\\u00${ch.charCodeAt(0).toString(16)}`) };
  const elements = [
    `{"image_id": 1000, "category_id": 1, "score": 0.5, "segmentation": ${JSON.stringify(rle)}, "extra": {"a": [1, "]"]}}`,
    `{"image_id": "1000", "category_id": 1, "score": 0.5, "bbox": [1, 2, 3, 4]}`,
    `{"image_id": 1000, "category_id": 1, "score": 0.5, "segmentation": [[1, 1, 9, 1, 9, 9]]}`,
    `{"image_id": 1000, "category_id": 1, "score": 0.5, "segmentation": ${JSON.stringify(uncompressed)}}`,
    `{"image_id": 1000, "category_id": 1, "score": 0.5, "segmentation": ${JSON.stringify(unicode).replace(/\\\\u/, '\\u')}}`,
    `{"image_id": 1000, "category_id": 1, "score": null, "bbox": [1, 2, 3, 4]}`,
    `{"image_id": 1000, "image_id": 1003, "category_id": 1, "score": 0.5, "bbox": [1, 2, 3, 4]}`,
    `42`,
    `"a string, with a comma"`,
  ];
  const text = `[${elements.join(' ,\n ')}]`;
  const r = scan(text);
  t.ok(r.ok);
  t.same(r.dets.map((d, i) => (r.masks[i] ? { ...(d as object), segmentation: 'parsed' } : d)), JSON.parse(text).map((d: unknown, i: number) => (r.masks[i] ? { ...(d as object), segmentation: 'parsed' } : d)),
    'each element as JSON.parse reads it');
  t.ok(r.masks.every((m) => m === undefined), 'no mask here is of the usual shape (compressed, no escapes, known keys only)');
  t.equal((r.dets[6] as { image_id: number }).image_id, 1003, 'a key given twice keeps its last value');
  t.same(rleFromJson(JSON.parse(JSON.stringify(unicode).replace(/\\\\u/, '\\u'))).counts, rleFromJson(rle as never).counts, 'the escaped counts string is the same mask');
});

t.test('a file that is not a JSON array fails as JSON.parse fails', async (t) => {
  const good = JSON.stringify(masks.slice(0, 3));
  for (const bad of [good.slice(0, -1), good.replace(/]$/, ',]'), `\ufeff${good}`, `${good} x`, good.replace('"counts"', '"counts" "'), '{"a": 1}']) {
    const viaParse = (() => {
      try {
        evaluateResults(gt, JSON.parse(bad), 'segm', 'f.json');
        return 'no error';
      } catch (e) {
        return (e as Error).name;
      }
    })();
    t.throws(() => evaluateResultsBytes(gt, Buffer.from(bad), 'segm', 'f.json'),
      viaParse === 'SyntaxError' ? /f\.json: not valid JSON/ : DetectionError, `${JSON.stringify(bad.slice(-12))}: ${viaParse}`);
  }
  // A bad detection early in a file that is not JSON: the JSON error is the one reported, as when the file is parsed first.
  const badDet = JSON.stringify([{ ...masks[0], image_id: 999999 }, ...masks.slice(1, 3)]);
  t.throws(() => evaluateResultsBytes(gt, Buffer.from(badDet), 'segm', 'f.json'), /detection 0: image_id 999999 is not an image/);
  t.throws(() => evaluateResultsBytes(gt, Buffer.from(badDet.slice(0, -1)), 'segm', 'f.json'), /not valid JSON/);
});

t.test('a malformed counts string is reported as the generic reader reports it', async (t) => {
  const d = { ...masks[0], segmentation: { ...masks[0].segmentation, counts: `${masks[0].segmentation.counts.slice(0, 4)} ${masks[0].segmentation.counts.slice(4)}` } };
  const text = JSON.stringify([masks[1], d]);
  const expected = (() => {
    try {
      evaluateResults(gt, JSON.parse(text), 'segm', 'f.json');
    } catch (e) {
      return (e as Error).message;
    }
    return 'no error';
  })();
  t.match(expected, /detection 1: bad segmentation: RLE counts string has ' ' at char 4/);
  t.throws(() => evaluateResultsBytes(gt, Buffer.from(text), 'segm', 'f.json'), { message: expected });
  // 'T' opens a two-character number (100 is 'T3').
  const cut = JSON.stringify([{ ...masks[1], segmentation: { size: [10, 10], counts: 'T' } }]);
  t.throws(() => evaluateResultsBytes(gt, Buffer.from(cut), 'segm', 'f.json'), /ends inside a number/);
});
