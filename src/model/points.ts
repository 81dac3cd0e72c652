// Locations: one row per cell of every level, P3 first, row-major in each.
//   points [L, 5] = (x, y, stride, lo, hi), (lo, hi) the level's size range.
// Cell (i, j) of a level with stride s sits at (j·s + ⌊s/2⌋, i·s + ⌊s/2⌋).
import { type ModelConfig, levelSizes, scaledSizeRanges } from './config.js';

export interface Points {
  /** L·5 floats, row-major [L, 5]. */
  data: Float32Array;
  L: number;
  /** First row of each level, plus L at the end: level l is rows [start[l], start[l+1]). */
  levelStart: number[];
}

export function makePoints(cfg: ModelConfig, S = cfg.inputSize): Points {
  const sides = levelSizes(cfg, S);
  const ranges = scaledSizeRanges(cfg, S);
  const L = sides.reduce((n, h) => n + h * h, 0);
  const data = new Float32Array(L * 5);
  const levelStart = [0];
  let row = 0;
  sides.forEach((h, l) => {
    const s = cfg.strides[l];
    const half = Math.floor(s / 2);
    for (let i = 0; i < h; i++) {
      for (let j = 0; j < h; j++, row++) {
        data.set([j * s + half, i * s + half, s, ranges[l][0], ranges[l][1]], row * 5);
      }
    }
    levelStart.push(row);
  });
  return { data, L, levelStart };
}
