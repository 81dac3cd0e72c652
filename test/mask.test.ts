// The COCO mask primitives against pixel-by-pixel definitions, hand-checked
// values, and the RLEs of real COCO-format files.
import t from 'tap';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import {
  boxIou, decodeMask, encodeMask, maskIou, rleArea, rleBoxes, rleFromBox, rleFromJson, rleFromPolygon,
  rleFromString, rleMerge, rleToBbox, rleToString, segmentationToRle, type RleMask,
} from '../src/geometry/mask.js';

const CASES = path.resolve(import.meta.dirname, '..', '..', 'shared', 'coco-eval-cases');

/** A small deterministic PRNG so failures reproduce. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

/** A random blobby mask: a few random rectangles, row-major. */
function randomMask(rand: () => number, h: number, w: number): Uint8Array {
  const m = new Uint8Array(h * w);
  const n = Math.floor(rand() * 4);
  for (let i = 0; i < n; i++) {
    const x0 = Math.floor(rand() * w), y0 = Math.floor(rand() * h);
    const x1 = Math.min(w, x0 + Math.ceil(rand() * w / 2)), y1 = Math.min(h, y0 + Math.ceil(rand() * h / 2));
    for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) m[y * w + x] = 1;
  }
  return m;
}

const count = (m: Uint8Array) => m.reduce((s, v) => s + v, 0);

t.test('encode/decode are inverse and column-major, as COCO', async (t) => {
  // 2×3, row-major [[0,1,1],[0,0,1]]; column by column 0 0 | 1 0 | 1 1 → runs [2, 1, 1, 2].
  const rle = encodeMask([0, 1, 1, 0, 0, 1], 2, 3);
  t.same([...rle.counts], [2, 1, 1, 2]);
  t.same([...decodeMask(rle)], [0, 1, 1, 0, 0, 1]);
  t.same([...encodeMask([1, 1, 1, 1], 2, 2).counts], [0, 4], 'a mask starting inside begins with an empty run of zeros');
  const rand = lcg(7);
  for (let i = 0; i < 50; i++) {
    const h = 1 + Math.floor(rand() * 20), w = 1 + Math.floor(rand() * 20);
    const m = randomMask(rand, h, w);
    const r = encodeMask(m, h, w);
    t.same(decodeMask(r), m);
    t.equal(rleArea(r), count(m));
    t.same(rleFromString(rleToString(r.counts), h, w).counts, r.counts, 'string round trip');
  }
});

t.test('compressed counts strings: known values and round trips', async (t) => {
  // Hand-encoded: counts [3, 4, 5, 1] → '3' '4' '5', then 1-4 = -3 → 0x1d + 48 = 'M'.
  t.equal(rleToString(Uint32Array.of(3, 4, 5, 1)), '345M');
  t.same([...rleFromString('345M', 13, 1).counts], [3, 4, 5, 1]);
  // 100 needs two chars: 100 = 0b11_00100 → low 5 bits 4 with more flag (0x20) → 36+48 = 'T', then 3 → '3'.
  t.equal(rleToString(Uint32Array.of(100)), 'T3');
  t.same([...rleFromString('T3', 10, 10).counts], [100]);
  t.throws(() => rleFromString('3 4', 1, 7), /' ' at char 1/);
  t.throws(() => rleFromString('T', 1, 7), /ends inside a number/);
});

t.test('polygons rasterise like frPyObjects: boxes of integer corners cover w*h pixels', async (t) => {
  const r = rleFromBox([1, 1, 2, 2], 4, 4);
  t.same([...decodeMask(r)], [0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0]);
  t.same(rleToBbox(r), [1, 1, 2, 2]);
  t.equal(rleArea(rleFromBox([10, 20, 30, 40], 100, 100)), 1200);
  // Clipped at the image border.
  t.equal(rleArea(rleFromBox([-5, -5, 10, 10], 8, 8)), 25);
  // A polygon with several parts is their union.
  const two = segmentationToRle([[0, 0, 0, 2, 2, 2, 2, 0], [4, 0, 4, 2, 6, 2, 6, 0]], 4, 8);
  t.equal(rleArea(two), 8);
  t.same(rleToBbox(two), [0, 0, 6, 2]);
  // A triangle, worked through rleFrPoly by hand: column crossings at
  // (0..3, 0) on the top edge and (3,0) (2,1) (1,2) (0,3) on the diagonal
  // give counts [0, 3, 2, 2, 3, 1, 14].
  const tri = rleFromPolygon([0, 0, 4, 0, 0, 4], 5, 5);
  t.same([...tri.counts], [0, 3, 2, 2, 3, 1, 14]);
  t.same([...decodeMask(tri)], [
    1, 1, 1, 0, 0,
    1, 1, 0, 0, 0,
    1, 0, 0, 0, 0,
    0, 0, 0, 0, 0,
    0, 0, 0, 0, 0,
  ]);
});

t.test('merge, bbox and IoU against pixel-by-pixel definitions', async (t) => {
  const rand = lcg(11);
  for (let i = 0; i < 60; i++) {
    const h = 1 + Math.floor(rand() * 16), w = 1 + Math.floor(rand() * 16);
    const ma = randomMask(rand, h, w), mb = randomMask(rand, h, w);
    const a = encodeMask(ma, h, w), b = encodeMask(mb, h, w);
    const or = ma.map((v, k) => v | mb[k]), and = ma.map((v, k) => v & mb[k]);
    t.same(decodeMask(rleMerge([a, b])), or);
    t.same(decodeMask(rleMerge([a, b], true)), and);
    // Tight box of the pixels, except that a run wrapping columns spans the full height.
    let xs = w, ys = h, xe = -1, ye = -1;
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if (ma[y * w + x]) {
      xs = Math.min(xs, x); xe = Math.max(xe, x); ys = Math.min(ys, y); ye = Math.max(ye, y);
    }
    const bb = rleToBbox(a);
    if (xe < 0) t.same(bb, [0, 0, 0, 0]);
    else {
      t.equal(bb[0], xs);
      t.equal(bb[2], xe - xs + 1);
      t.ok(bb[1] <= ys && bb[1] + bb[3] >= ye + 1, 'box covers the pixels');
    }
    const o = new Float64Array(2);
    maskIou([a], rleBoxes([a]), [b, b], rleBoxes([b, b]), Uint8Array.of(0, 1), o);
    const inter = count(and), uni = count(or);
    t.equal(o[0], inter === 0 ? 0 : inter / uni, 'IoU');
    t.equal(o[1], inter === 0 ? 0 : inter / count(ma), 'crowd: intersection over the detection');
  }
  const other: RleMask = { h: 3, w: 3, counts: Uint32Array.of(0, 9) };
  const big: RleMask = { h: 4, w: 4, counts: Uint32Array.of(0, 16) };
  const o = new Float64Array(1);
  t.equal(maskIou([other], rleBoxes([other]), [big], rleBoxes([big]), Uint8Array.of(0), o)[0], -1, 'different sizes give -1, as rleIou');
});

t.test('box IoU: no +1, crowd divides by the detection area', async (t) => {
  const o = new Float64Array(2);
  boxIou(Float64Array.of(0, 0, 10, 10), Float64Array.of(5, 0, 10, 10, 0, 0, 100, 100), Uint8Array.of(0, 1), o);
  t.equal(o[0], 50 / 150);
  t.equal(o[1], 1);
  boxIou(Float64Array.of(0, 0, 10, 10), Float64Array.of(10, 0, 5, 5, 0, 0, 0, 0), Uint8Array.of(0, 0), o);
  t.same([...o], [0, 0], 'touching boxes and empty boxes do not overlap');
});

t.test('RLEs of real COCO-format files', async (t) => {
  if (!existsSync(CASES)) {
    t.skip(`no ${CASES}: the shared COCO cases are not on this machine`);
    return;
  }
  let strings = 0, polygons = 0, uncompressed = 0;
  for (const dir of readdirSync(CASES).filter((d) => d.startsWith('case-'))) {
    const gt = JSON.parse(readFileSync(path.join(CASES, dir, 'gt.json'), 'utf8'));
    const imgs = new Map<number, { height: number; width: number }>(gt.images.map((i: { id: number }) => [i.id, i]));
    for (const a of gt.annotations) {
      const im = imgs.get(a.image_id)!;
      const r = segmentationToRle(a.segmentation, im.height, im.width);
      // pycocotools computed these areas: equal areas on thousands of polygons pin the rasteriser down.
      if (rleArea(r) !== a.area) t.fail(`${dir} annotation ${a.id}: area ${rleArea(r)} != ${a.area}`);
      t.same(encodeMask(decodeMask(r), r.h, r.w).counts, r.counts);
      if (Array.isArray(a.segmentation)) polygons++;
      else if (typeof a.segmentation.counts === 'string') {
        strings++;
        t.equal(rleToString(r.counts), a.segmentation.counts, 'decode → encode gives the same string');
      } else uncompressed++;
    }
    for (const d of JSON.parse(readFileSync(path.join(CASES, dir, 'dets_segm.json'), 'utf8'))) {
      strings++;
      const r = rleFromJson(d.segmentation);
      if (rleToString(r.counts) !== d.segmentation.counts) t.fail(`${dir}: detection RLE did not round-trip`);
    }
  }
  t.ok(polygons > 1000 && strings > 1000 && uncompressed > 5, `${polygons} polygons, ${strings} strings, ${uncompressed} uncompressed RLEs checked`);
});
