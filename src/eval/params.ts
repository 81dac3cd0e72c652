// cocoeval.py's default detection parameters, computed the way numpy computes
// them, and the two numpy/Python behaviours the summary depends on (numpy's
// pairwise summation in `np.mean`, Python's round-half-even in `{:0.3f}`),
// so that casl's figures are pycocotools' figures bit for bit.

/** np.linspace(start, stop, num): start + i * step, the last point set to stop exactly. */
export function linspace(start: number, stop: number, num: number): Float64Array {
  const out = new Float64Array(num);
  const step = (stop - start) / (num - 1);
  for (let i = 0; i < num; i++) out[i] = i * step + start;
  if (num > 1) out[num - 1] = stop;
  return out;
}

/** IoU thresholds .50:.05:.95 (T = 10), as `np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1)`. */
export const IOU_THRS = linspace(0.5, 0.95, Math.round((0.95 - 0.5) / 0.05) + 1);
/** Recall thresholds 0:.01:1 (R = 101). */
export const REC_THRS = linspace(0, 1, Math.round((1 - 0) / 0.01) + 1);
/** Detections per image considered (M = 3); the last is the cut applied before matching. */
export const MAX_DETS = [1, 10, 100] as const;
/** Area ranges all, small, medium, large (A = 4), inclusive at both ends, on the annotation's `area`. */
export const AREA_RNG: readonly (readonly [number, number])[] = [
  [0 ** 2, 1e5 ** 2],
  [0 ** 2, 32 ** 2],
  [32 ** 2, 96 ** 2],
  [96 ** 2, 1e5 ** 2],
];
export const AREA_LBL = ['all', 'small', 'medium', 'large'] as const;
export type AreaLabel = (typeof AREA_LBL)[number];

/** np.spacing(1): added to the precision denominator by accumulate(). */
export const EPS = 2.220446049250313e-16;

/**
 * numpy's pairwise summation of float64 (what `np.add.reduce` and so
 * `np.mean` do on a contiguous array): blocks of up to 128 summed with 8
 * accumulators, larger ranges split in halves rounded to multiples of 8.
 */
export function pairwiseSum(a: ArrayLike<number>, start = 0, n = a.length - start): number {
  if (n < 8) {
    let res = 0;
    for (let i = 0; i < n; i++) res += a[start + i];
    return res;
  }
  if (n <= 128) {
    const r = [a[start], a[start + 1], a[start + 2], a[start + 3], a[start + 4], a[start + 5], a[start + 6], a[start + 7]];
    let i = 8;
    for (; i < n - (n % 8); i += 8) {
      for (let j = 0; j < 8; j++) r[j] += a[start + i + j];
    }
    let res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; i++) res += a[start + i];
    return res;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return pairwiseSum(a, start, n2) + pairwiseSum(a, start + n2, n - n2);
}

/** numpy's ufunc buffer size: a reduction's inner loop sees at most this many elements at a time. */
const NUMPY_BUFSIZE = 8192;

/**
 * np.add.reduce of a contiguous float64 array, as `np.mean` sums: pairwise
 * within blocks of numpy's buffer size, the blocks' sums added in order
 * (numpy 1.24 gives these bits on arrays of 12,120 values, the whole-array
 * pairwise sum differs in the last bit on a third of them).
 */
export function numpySum(a: ArrayLike<number>, start = 0, n = a.length - start): number {
  let res = 0;
  for (let off = 0; off < n; off += NUMPY_BUFSIZE) res += pairwiseSum(a, start + off, Math.min(NUMPY_BUFSIZE, n - off));
  return res;
}

/**
 * Python's `'{:0.3f}'.format(x)`: the exact decimal value rounded half to
 * even, where JavaScript's toFixed rounds an exact tie away from zero.
 */
export function formatFixed3(x: number): string {
  const s = x.toFixed(3);
  const exact = x.toFixed(100);
  const m = /^(-?\d+\.\d{3})5(0*)$/.exec(exact);
  if (!m) return s;
  const lastDigit = Number(m[1][m[1].length - 1]);
  return lastDigit % 2 === 0 ? m[1] : s;
}
