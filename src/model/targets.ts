// FCOS target assignment, a pure function on plain arrays (no tensors).
// B images, L locations, M boxes in an image:
//   points          [L, 5] (x, y, stride, lo, hi)          (points.ts)
//   gt[b].boxes     [M, 4] x1y1x2y2 pixels of the model input
//   gt[b].labels    [M]    classifier channel, 0 … K−1
//   → pos [B, L] 0/1, labels [B, L] (−1 where negative), boxes [B, L, 4]
//     (the matched box, 0 where negative), ctr [B, L] (0 where negative),
//     matched [B, L] (index m of the matched box, −1 where negative: CondInst
//     finds the positive's mask by it)
// Arithmetic is rounded to float32 at each step, as in the reference, so
// boundary cases (a location exactly on the sampling square) fall the same way.
// An empty or inverted box has no location strictly inside it, so it is never
// assigned (validating boxes is the loader's job).
import type { Points } from './points.js';

export interface GtInstances {
  boxes: ArrayLike<number>[] | Float32Array;
  labels: ArrayLike<number>;
}

export interface Targets {
  B: number;
  L: number;
  pos: Uint8Array;
  labels: Int32Array;
  boxes: Float32Array;
  ctr: Float32Array;
  /** Set by fcosTargets; hand-made targets for the box losses may leave it out. */
  matched?: Int32Array;
  numPos: number;
}

const f = Math.fround;

function boxAt(boxes: GtInstances['boxes'], m: number): [number, number, number, number] {
  if (boxes instanceof Float32Array) return [boxes[4 * m], boxes[4 * m + 1], boxes[4 * m + 2], boxes[4 * m + 3]];
  const b = boxes[m];
  return [b[0], b[1], b[2], b[3]];
}

/**
 * For each location: candidates are boxes whose centre-sampling square
 * (radius·stride around the box centre, clipped to the box) strictly contains
 * it and whose max(l, t, r, b) lies in the level's [lo, hi]; the smallest-area
 * candidate wins, ties to the lowest index. Centerness target
 * sqrt(min(l,r)/max(l,r) · min(t,b)/max(t,b)).
 */
export function fcosTargets(points: Points, gt: GtInstances[], centerRadius: number): Targets {
  const B = gt.length;
  const { L, data: p } = points;
  const pos = new Uint8Array(B * L);
  const labels = new Int32Array(B * L).fill(-1);
  const boxes = new Float32Array(B * L * 4);
  const ctr = new Float32Array(B * L);
  const matched = new Int32Array(B * L).fill(-1);
  let numPos = 0;
  for (let b = 0; b < B; b++) {
    const M = gt[b].labels.length;
    const g = Array.from({ length: M }, (_, m) => {
      const [x1, y1, x2, y2] = boxAt(gt[b].boxes, m).map(f);
      return { x1, y1, x2, y2, cx: f(f(x1 + x2) / 2), cy: f(f(y1 + y2) / 2), area: f(f(x2 - x1) * f(y2 - y1)) };
    });
    for (let i = 0; i < L; i++) {
      const x = p[5 * i], y = p[5 * i + 1], s = p[5 * i + 2], lo = p[5 * i + 3], hi = p[5 * i + 4];
      const r = f(s * centerRadius);
      let best = -1;
      let bestArea = Infinity;
      for (let m = 0; m < M; m++) {
        const q = g[m];
        const sx1 = Math.max(f(q.cx - r), q.x1), sy1 = Math.max(f(q.cy - r), q.y1);
        const sx2 = Math.min(f(q.cx + r), q.x2), sy2 = Math.min(f(q.cy + r), q.y2);
        if (!(f(x - sx1) > 0 && f(y - sy1) > 0 && f(sx2 - x) > 0 && f(sy2 - y) > 0)) continue;
        const maxReg = Math.max(f(x - q.x1), f(y - q.y1), f(q.x2 - x), f(q.y2 - y));
        if (!(maxReg >= lo && maxReg <= hi)) continue;
        if (q.area < bestArea) {
          bestArea = q.area;
          best = m;
        }
      }
      if (best < 0) continue;
      const q = g[best];
      const o = b * L + i;
      const l = f(x - q.x1), t = f(y - q.y1), rr = f(q.x2 - x), bb = f(q.y2 - y);
      pos[o] = 1;
      labels[o] = gt[b].labels[best];
      matched[o] = best;
      boxes.set([q.x1, q.y1, q.x2, q.y2], 4 * o);
      const lr = f(Math.min(l, rr) / Math.max(l, rr));
      const tb = f(Math.min(t, bb) / Math.max(t, bb));
      ctr[o] = f(Math.sqrt(f(Math.max(lr, 0) * Math.max(tb, 0))));
      numPos++;
    }
  }
  return { B, L, pos, labels, boxes, ctr, matched, numPos };
}
