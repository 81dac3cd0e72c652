// FCOS target assignment on hand-made boxes at S = 128 (tiny-fcos levels:
// strides 8…128, size ranges [0, 32], [32, 64], [64, 128], [128, 256], [256, ∞)).
import t from 'tap';
import { modelConfig } from '../src/model/config.js';
import { makePoints } from '../src/model/points.js';
import { fcosTargets } from '../src/model/targets.js';

const cfg = modelConfig('tiny-fcos');
const points = makePoints(cfg);
const row = (i: number) => Array.from(points.data.subarray(5 * i, 5 * i + 5));
/** Index of the location at (x, y) on the level with stride s. */
function loc(x: number, y: number, s: number): number {
  const l = cfg.strides.indexOf(s);
  const h = 128 / s >= 1 ? Math.ceil(128 / s) : 1;
  return points.levelStart[l] + Math.floor(y / s) * h + Math.floor(x / s);
}

t.test('locations: cell centres, level by level, row-major', async (t) => {
  t.equal(points.L, 341);
  t.same(points.levelStart, [0, 256, 320, 336, 340, 341]);
  t.same(row(0), [4, 4, 8, 0, 32]);
  t.same(row(1), [12, 4, 8, 0, 32], 'x varies fastest');
  t.same(row(16), [4, 12, 8, 0, 32]);
  t.same(row(256), [8, 8, 16, 32, 64]);
  t.same(row(340), [64, 64, 128, 256, Infinity]);
});

t.test('one box: centre sampling and scale ranges pick the locations', async (t) => {
  // Box [0, 0, 40, 40], centre (20, 20).
  // P3 (s 8, r 12): square [8, 32]², strictly inside: x, y ∈ {12, 20, 28}; max(ltrb) ≤ 28 ≤ 32 → 9.
  // P4 (s 16, r 24): square clipped to the box, inside: {8, 24}²; max(ltrb) = 32 except at (24, 24) (24 < 32) → 3.
  // P5 (s 32): only (16, 16), max 24 < 64 → none.
  const tg = fcosTargets(points, [{ boxes: [[0, 0, 40, 40]], labels: [0] }], 1.5);
  const want = [
    ...[12, 20, 28].flatMap((y) => [12, 20, 28].map((x) => loc(x, y, 8))),
    loc(8, 8, 16), loc(24, 8, 16), loc(8, 24, 16),
  ].sort((a, b) => a - b);
  const got = [...tg.pos.keys()].filter((i) => tg.pos[i]);
  t.same(got, want);
  t.equal(tg.numPos, 12);
  const o = loc(12, 12, 8);
  t.equal(tg.ctr[o], Math.fround(12 / 28), 'centerness at (12, 12): l = t = 12, r = b = 28 → 12/28');
  t.equal(tg.ctr[loc(20, 20, 8)], 1, 'centerness 1 at the centre');
  t.same(Array.from(tg.boxes.subarray(4 * o, 4 * o + 4)), [0, 0, 40, 40]);
  t.equal(tg.labels[o], 0);
  t.equal(tg.labels[loc(4, 4, 8)], -1, 'negatives have label −1');
  t.equal(tg.ctr[loc(4, 4, 8)], 0);
});

t.test('overlapping boxes: the smallest area wins, ties to the lowest index', async (t) => {
  const big = [0, 0, 48, 48];
  const small = [8, 8, 36, 36]; // both contain (20, 20) on P3 in their centre squares
  const a = fcosTargets(points, [{ boxes: [big, small], labels: [0, 1] }], 1.5);
  t.equal(a.labels[loc(20, 20, 8)], 1, 'the smaller box, listed second, wins');
  const twin = [0, 0, 40, 40];
  const same = [0, 0, 40, 40];
  const b = fcosTargets(points, [{ boxes: [twin, same], labels: [3, 5] }], 1.5);
  t.equal(b.labels[loc(20, 20, 8)], 3, 'equal areas: the first box');
});

t.test('a batch keeps images apart; empty and degenerate boxes get no positives', async (t) => {
  const tg = fcosTargets(points, [
    { boxes: [], labels: [] },
    { boxes: [[10, 10, 10, 50], [60, 60, 50, 70]], labels: [0, 0] },
    { boxes: new Float32Array([0, 0, 40, 40]), labels: [2] },
  ], 1.5);
  t.equal(tg.B, 3);
  t.equal(tg.pos.subarray(0, 2 * 341).reduce((s, v) => s + v, 0), 0);
  t.equal(tg.numPos, 12, 'the third image as in the single-box case');
  t.equal(tg.labels[2 * 341 + loc(20, 20, 8)], 2);
});

t.test('large boxes go to coarse levels', async (t) => {
  // Box [4, 4, 124, 124]: P4's centre square (40, 88) holds (56, 56), where
  // max(ltrb) = 68 > 64; P5's holds (48, 48) with max(ltrb) = 76 ∈ [64, 128].
  const tg = fcosTargets(points, [{ boxes: [[4, 4, 124, 124]], labels: [0] }], 1.5);
  t.equal(tg.pos[loc(48, 48, 32)], 1, 'P5 location');
  t.equal(tg.pos.subarray(0, 320).reduce((s, v) => s + v, 0), 0, 'no P3 or P4 location');
  t.equal(tg.numPos, 4, 'the four P5 locations around the centre');
});
