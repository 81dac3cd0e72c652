// COCO evaluation, the algorithm of pycocotools' cocoeval.py (evaluateImg,
// accumulate, summarize) on typed arrays, one image at a time so that
// detections can be streamed: an image's detections are matched as soon as
// they arrive, and only what accumulate() needs is kept — per detection its
// score, its place in the global sort order and 2 bits per (area range, IoU
// threshold) saying true positive, false positive or ignored.
//
// Shorthand: T = 10 IoU thresholds, R = 101 recall thresholds, K categories,
// A = 4 area ranges, M = 3 max-detection cuts; D detections and G ground
// truths of one (image, category).

import {
  boxIou, maskViewIou, rleBoxes, rleView, segmentationToRle, MaskError, RleSlab, type RleMask, type RleView,
} from '../geometry/mask.js';
import type { GroundTruth } from './ground-truth.js';
import { AREA_RNG, EPS, IOU_THRS, MAX_DETS, REC_THRS, numpySum } from './params.js';

export type IouType = 'bbox' | 'segm';

/**
 * Detections as loadRes() leaves them (category index, score, area, box,
 * mask), in columns: the detections of a results file are a few typed
 * arrays, not tens of thousands of objects for the garbage collector to copy.
 */
export class Detections {
  n = 0;
  /** Index into gt.categories; -1 for a category the ground truth lacks. */
  cat = new Int32Array(64);
  score = new Float64Array(64);
  /** bbox results: w * h of the box; segm-only results: the mask's pixel count. */
  area = new Float64Array(64);
  /** [x, y, w, h] per detection; used for bbox IoU. */
  box = new Float64Array(256);
  /** segm: the mask's runs masks.counts[maskStart .. maskEnd), its size, and its box (rleToBbox). */
  maskStart = new Int32Array(64);
  maskEnd = new Int32Array(64);
  maskH = new Int32Array(64);
  maskW = new Int32Array(64);
  maskBox = new Float64Array(256);

  constructor(readonly masks: RleSlab) {}

  /** `mask` must be a view of `masks` (its runs are read from there, wherever the buffer has grown to). */
  add(cat: number, score: number, area: number, box: ArrayLike<number>, mask?: RleView, maskBox?: ArrayLike<number>): void {
    if (this.n === this.cat.length) this.grow();
    const i = this.n++;
    this.cat[i] = cat;
    this.score[i] = score;
    this.area[i] = area;
    for (let c = 0; c < 4; c++) this.box[i * 4 + c] = box[c];
    if (mask !== undefined && maskBox !== undefined) {
      this.maskStart[i] = mask.start;
      this.maskEnd[i] = mask.end;
      this.maskH[i] = mask.h;
      this.maskW[i] = mask.w;
      for (let c = 0; c < 4; c++) this.maskBox[i * 4 + c] = maskBox[c];
    }
  }

  /** The mask of detection i, as a view of the run buffer. */
  mask(i: number): RleView {
    return { h: this.maskH[i], w: this.maskW[i], counts: this.masks.counts, start: this.maskStart[i], end: this.maskEnd[i] };
  }

  /** Forgets every detection (the run buffer is its owner's to clear). */
  clear(): void {
    this.n = 0;
  }

  private grow(): void {
    const n = 2 * this.cat.length;
    const more = <A extends Int32Array | Float64Array>(a: A, per = 1): A => {
      const b = new (a.constructor as new (n: number) => A)(n * per);
      b.set(a);
      return b;
    };
    this.cat = more(this.cat);
    this.score = more(this.score);
    this.area = more(this.area);
    this.box = more(this.box, 4);
    this.maskStart = more(this.maskStart);
    this.maskEnd = more(this.maskEnd);
    this.maskH = more(this.maskH);
    this.maskW = more(this.maskW);
    this.maskBox = more(this.maskBox, 4);
  }
}

export const SUMMARY_KEYS = ['AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'AR1', 'AR10', 'AR100', 'ARs', 'ARm', 'ARl'] as const;
export type SummaryKey = (typeof SUMMARY_KEYS)[number];
export type Summary = Record<SummaryKey, number>;

export interface EvalResult {
  iouType: IouType;
  agnostic: boolean;
  summary: Summary;
  /** AP@[.50:.95], all areas, 100 detections, per category; -1 when the category has no ground truth. */
  perCategory: { id: number; name: string; AP: number }[];
  /** precision[t][r][k][a][m] flattened, -1 where there is no ground truth. */
  precision: Float64Array;
  /** recall[t][k][a][m] flattened. */
  recall: Float64Array;
  images: number;
  detections: number;
}

const T = IOU_THRS.length;
const R = REC_THRS.length;
const A = AREA_RNG.length;
const M = MAX_DETS.length;
const MAX_DET = MAX_DETS[M - 1];
const FP = 0;
const TP = 1;
const IGN = 2;
let ignEveryT = 0;
for (let t = 0; t < T; t++) ignEveryT |= IGN << (2 * t);
const IGN_EVERY_T = ignEveryT;
// Sort keys pack (image rank, rank in image) so ties in score keep cocoeval's order.
const RANK_SLOTS = 128;

/** Append-only per-category storage of what accumulate() needs, in fixed chunks (no copying on growth). */
class DetStore {
  static readonly CHUNK = 1 << 15;
  n = 0;
  private scores: Float64Array[] = [];
  private keys: Uint32Array[] = [];
  private codes: Uint32Array[] = [];

  push(score: number, key: number, codes: Uint32Array, at: number): void {
    const c = this.n >>> 15;
    const o = this.n & (DetStore.CHUNK - 1);
    if (o === 0) {
      this.scores.push(new Float64Array(DetStore.CHUNK));
      this.keys.push(new Uint32Array(DetStore.CHUNK));
      this.codes.push(new Uint32Array(DetStore.CHUNK * A));
    }
    this.scores[c][o] = score;
    this.keys[c][o] = key;
    for (let a = 0; a < A; a++) this.codes[c][o * A + a] = codes[at * A + a];
    this.n++;
  }

  /** Contiguous copies, for sorting and scanning. */
  flat(): { scores: Float64Array; keys: Uint32Array; codes: Uint32Array } {
    const scores = new Float64Array(this.n);
    const keys = new Uint32Array(this.n);
    const codes = new Uint32Array(this.n * A);
    for (let c = 0; c < this.scores.length; c++) {
      const from = c * DetStore.CHUNK;
      const len = Math.min(DetStore.CHUNK, this.n - from);
      scores.set(this.scores[c].subarray(0, len), from);
      keys.set(this.keys[c].subarray(0, len), from);
      codes.set(this.codes[c].subarray(0, len * A), from * A);
    }
    return { scores, keys, codes };
  }
}

/**
 * need[r]: the fewest true positives whose recall tp / npig (as a float, the
 * way numpy divides) reaches REC_THRS[r]. Recall only grows with tp, so
 * `REC_THRS[r] > tp / npig` is `need[r] > tp`, with no division per detection.
 */
function recallNeeds(npig: number, need: Float64Array): void {
  for (let r = 0; r < R; r++) {
    const thr = REC_THRS[r];
    let x = Math.max(0, Math.ceil(thr * npig) - 1);
    while (x / npig < thr) x++;
    while (x > 0 && (x - 1) / npig >= thr) x--;
    need[r] = x;
  }
}

/**
 * accumulate()'s inner loop for one (category, area range, max-detection
 * cut, IoU threshold): `codes` holds the cut's detections in accumulate()'s
 * order, this threshold's code at bit `shift`. Writes the precision at each
 * recall threshold to q and returns the recall.
 *
 * It walks backwards keeping the running max of precision (the envelope)
 * and, at each true positive, fills the recall thresholds first reached
 * there (searchsorted 'left': recall only changes at true positives).
 * Ignored detections repeat their predecessor's (recall, precision), so
 * skipping them changes nothing; a false positive's precision is at most its
 * predecessor's (same tp, one more fp), so the envelope never takes it
 * before that predecessor is reached, and its precision need not be computed.
 */
function precisionAt(codes: Uint32Array, n: number, shift: number, npig: number, need: Float64Array, q: Float64Array): number {
  let tp = 0, fp = 0;
  for (let i = 0; i < n; i++) {
    const c = (codes[i] >>> shift) & 3;
    if (c === TP) tp++;
    else if (c === FP) fp++;
  }
  const recall = tp / npig;
  q.fill(0);
  let r = R - 1;
  while (r >= 0 && need[r] > tp) r--;
  let best = 0;
  for (let i = n - 1; i >= 0 && r >= 0; i--) {
    const c = (codes[i] >>> shift) & 3;
    if (c === TP) {
      const pr = tp / (fp + tp + EPS);
      if (pr > best) best = pr;
      tp--;
      while (r >= 0 && need[r] > tp) q[r--] = best;
    } else if (c === FP) {
      fp--;
    }
  }
  // The first detection reaches every threshold still left.
  while (r >= 0) q[r--] = best;
  return recall;
}

/**
 * Sorts the indices a[0 .. n) by category (when `cat` is given), then score
 * descending, then tie key (when `tie` is given; the index otherwise): the
 * orders of evaluateImg() and accumulate(), both cocoeval's stable sorts.
 * A bottom-up merge sort over typed arrays: a comparator callback per
 * comparison costs several times more. Returns whichever of `a`, `tmp` holds
 * the result.
 */
function sortDetections(a: Uint32Array, tmp: Uint32Array, n: number, score: Float64Array, cat?: Int32Array, tie?: Uint32Array): Uint32Array {
  let src = a, dst = tmp;
  for (let width = 1; width < n; width *= 2) {
    for (let lo = 0; lo < n; lo += 2 * width) {
      const mid = Math.min(lo + width, n), hi = Math.min(lo + 2 * width, n);
      let i = lo, j = mid, o = lo;
      while (i < mid && j < hi) {
        const x = src[i], y = src[j];
        const cx = cat ? cat[x] : 0, cy = cat ? cat[y] : 0;
        const sx = score[x], sy = score[y];
        // y goes first only if strictly before x: equal elements keep their order.
        if (cy < cx || (cy === cx && (sy > sx || (sy === sx && (tie ? tie[y] < tie[x] : y < x))))) {
          dst[o++] = y;
          j++;
        } else {
          dst[o++] = x;
          i++;
        }
      }
      while (i < mid) dst[o++] = src[i++];
      while (j < hi) dst[o++] = src[j++];
    }
    const t = src;
    src = dst;
    dst = t;
  }
  return src;
}

export class CocoEvaluator {
  readonly K: number;
  private readonly stores: DetStore[];
  /** npig[k * A + a]: ground truths not ignored. */
  private readonly npig: Float64Array;
  private readonly seen: Uint8Array;
  private detections = 0;
  // Per-(image, category) work arrays, grown on demand and reused.
  private ious = new Float64Array(1024);
  private codes = new Uint32Array(MAX_DET * A);
  private outOfRange = new Uint8Array(MAX_DET);
  private maxIou = new Float64Array(MAX_DET);
  private gtBuf = { crowd: new Uint8Array(64), gIg: new Uint8Array(64), perm: new Int32Array(64), gtm: new Uint8Array(64), boxes: new Float64Array(256) };
  private dtBoxes = new Float64Array(MAX_DET * 4);
  private sortBuf = new Uint32Array(512);

  constructor(readonly gt: GroundTruth, readonly iouType: IouType) {
    this.K = gt.categories.length;
    this.stores = Array.from({ length: this.K }, () => new DetStore());
    this.npig = new Float64Array(this.K * A);
    this.seen = new Uint8Array(gt.imageIds.length);
    if (gt.imageIds.length >= 2 ** 32 / RANK_SLOTS) throw new Error(`casl eval handles up to ${2 ** 32 / RANK_SLOTS} images`);
  }

  /** Whether the image of this rank has been evaluated already. */
  hasImage(rank: number): boolean {
    return this.seen[rank] === 1;
  }

  /**
   * Matches one image's detections (all categories) against its ground
   * truth: dets[which[0 .. count)] in file order, or all of `dets` when
   * `which` is not given.
   */
  addImage(rank: number, dets: Detections, which?: ArrayLike<number>, count = which ? which.length : dets.n): void {
    if (this.seen[rank]) throw new Error(`image ${this.gt.imageIds[rank]} was evaluated twice`);
    this.seen[rank] = 1;
    const gt = this.gt;
    // Detections by category, best score first; ties keep the input order (cocoeval's stable sort).
    if (this.sortBuf.length < 2 * count) this.sortBuf = new Uint32Array(4 * count);
    const kept = this.sortBuf.subarray(0, count), tmp = this.sortBuf.subarray(count, 2 * count);
    let n = 0;
    for (let i = 0; i < count; i++) {
      const d = which ? which[i] : i;
      if (dets.cat[d] >= 0) kept[n++] = d;
    }
    const order = sortDetections(kept, tmp, n, dets.score, dets.cat).subarray(0, n);
    // Ground truths by category, in file order within one.
    const gts: number[] = [];
    for (let p = gt.annStart[rank]; p < gt.annStart[rank + 1]; p++) gts.push(gt.annOrder[p]);
    gts.sort((x, y) => gt.annCat[x] - gt.annCat[y] || x - y);
    let i = 0, g = 0;
    while (i < order.length || g < gts.length) {
      const k = Math.min(i < order.length ? dets.cat[order[i]] : Infinity, g < gts.length ? gt.annCat[gts[g]] : Infinity);
      let i1 = i;
      while (i1 < order.length && dets.cat[order[i1]] === k) i1++;
      let g1 = g;
      while (g1 < gts.length && gt.annCat[gts[g1]] === k) g1++;
      this.evaluateImageCategory(rank, k, gts, g, g1 - g, dets, order, i, Math.min(i1 - i, MAX_DET));
      i = i1;
      g = g1;
    }
  }

  /**
   * evaluateImg() for one (image, category), every area range at once: the
   * ground truths gts[g0 .. g0 + G), the detections dets[order[d0 .. d0 + D)]
   * (best first, already cut to maxDets[-1]).
   */
  private evaluateImageCategory(
    rank: number, k: number, gts: number[], g0: number, G: number, dets: Detections, order: Uint32Array, d0: number, D: number,
  ): void {
    const gt = this.gt;
    if (this.ious.length < D * G) this.ious = new Float64Array(Math.max(D * G, 2 * this.ious.length));
    if (this.gtBuf.crowd.length < G) {
      const n = Math.max(G, 2 * this.gtBuf.crowd.length);
      this.gtBuf = { crowd: new Uint8Array(n), gIg: new Uint8Array(n), perm: new Int32Array(n), gtm: new Uint8Array(n), boxes: new Float64Array(4 * n) };
    }
    const ious = this.ious;
    const { crowd, gIg, perm, gtm } = this.gtBuf;
    for (let g = 0; g < G; g++) crowd[g] = gt.annCrowd[gts[g0 + g]];
    if (D > 0 && G > 0) this.computeIou(rank, gts, g0, G, dets, order, d0, D, ious);

    const codes = this.codes;
    codes.fill(0, 0, D * A);
    const outOfRange = this.outOfRange;
    const maxIou = this.maxIou;
    for (let d = 0; d < D; d++) {
      let best = -Infinity;
      for (let g = 0; g < G; g++) if (ious[d * G + g] > best) best = ious[d * G + g];
      maxIou[d] = best;
    }
    for (let a = 0; a < A; a++) {
      const [lo, hi] = AREA_RNG[a];
      let nIg = 0;
      for (let g = 0; g < G; g++) {
        const area = gt.annArea[gts[g0 + g]];
        gIg[g] = crowd[g] || area < lo || area > hi ? 1 : 0;
        nIg += gIg[g];
      }
      this.npig[k * A + a] += G - nIg;
      // gt sorted with ignored last, stably.
      let p = 0;
      for (let g = 0; g < G; g++) if (!gIg[g]) perm[p++] = g;
      for (let g = 0; g < G; g++) if (gIg[g]) perm[p++] = g;
      for (let d = 0; d < D; d++) {
        const area = dets.area[order[d0 + d]];
        outOfRange[d] = area < lo || area > hi ? 1 : 0;
      }
      if (G === 0) {
        // Nothing to match: false positives, or ignored outside the area range, at every threshold.
        for (let d = 0; d < D; d++) codes[d * A + a] = outOfRange[d] ? IGN_EVERY_T : 0;
        continue;
      }

      for (let t = 0; t < T; t++) {
        gtm.fill(0, 0, G);
        const thr = Math.min(IOU_THRS[t], 1 - 1e-10);
        for (let d = 0; d < D; d++) {
          if (maxIou[d] < thr) {
            // No ground truth reaches the threshold: the scan below would find none.
            if (outOfRange[d]) codes[d * A + a] |= IGN << (2 * t);
            continue;
          }
          let iou = thr;
          let m = -1;
          const row = d * G;
          for (let gi = 0; gi < G; gi++) {
            const g = perm[gi];
            if (gtm[g] && !crowd[g]) continue;
            if (m > -1 && gIg[m] === 0 && gIg[g] === 1) break;
            const v = ious[row + g];
            if (v < iou) continue;
            iou = v;
            m = g;
          }
          let code: number;
          if (m === -1) {
            code = outOfRange[d] ? IGN : FP;
          } else {
            gtm[m] = 1;
            // cocoeval records the gt's id and tests it for nonzero: a gt with id 0 counts as unmatched.
            const matched = gt.annId[gts[g0 + m]] !== 0;
            code = gIg[m] || (!matched && outOfRange[d]) ? IGN : matched ? TP : FP;
          }
          codes[d * A + a] |= code << (2 * t);
        }
      }
    }
    const store = this.stores[k];
    for (let d = 0; d < D; d++) store.push(dets.score[order[d0 + d]], rank * RANK_SLOTS + d, codes, d);
    this.detections += D;
  }

  private computeIou(
    rank: number, gts: number[], g0: number, G: number, dets: Detections, order: Uint32Array, d0: number, D: number, ious: Float64Array,
  ): void {
    const gt = this.gt;
    const crowd = this.gtBuf.crowd;
    if (this.iouType === 'bbox') {
      const db = this.dtBoxes, gb = this.gtBuf.boxes;
      for (let d = 0; d < D; d++) {
        const i = order[d0 + d];
        for (let c = 0; c < 4; c++) db[d * 4 + c] = dets.box[i * 4 + c];
      }
      for (let g = 0; g < G; g++) {
        const j = gts[g0 + g];
        if (Number.isNaN(gt.annBox[j * 4])) {
          throw new MaskError(`${gt.source}: annotations[${gt.annFileIndex[j]}] (id ${gt.annId[j]}) has no "bbox"; bbox evaluation needs one on every annotation`);
        }
        for (let c = 0; c < 4; c++) gb[g * 4 + c] = gt.annBox[j * 4 + c];
      }
      boxIou(db, gb, crowd, ious, D, G);
      return;
    }
    const h = gt.heights[rank], w = gt.widths[rank];
    const gm: RleMask[] = [];
    for (let g = 0; g < G; g++) {
      const j = gts[g0 + g];
      const segm = gt.segmentation(j);
      const where = (): string => `${gt.source}: annotations[${gt.annFileIndex[j]}] (id ${gt.annId[j]})`;
      if (segm === undefined) throw new MaskError(`${where()} has no "segmentation"; segm evaluation needs one on every annotation`);
      if (Array.isArray(segm) && h < 0) {
        throw new MaskError(`${where()} is a polygon but image ${gt.imageIds[rank]} has no height/width to rasterise it on`);
      }
      try {
        gm.push(segmentationToRle(segm, h, w));
      } catch (e) {
        throw new MaskError(`${where()}: ${(e as Error).message}`);
      }
    }
    const db = this.dtBoxes;
    const dm: RleView[] = [];
    for (let d = 0; d < D; d++) {
      const i = order[d0 + d];
      for (let c = 0; c < 4; c++) db[d * 4 + c] = dets.maskBox[i * 4 + c];
      dm.push(dets.mask(i));
    }
    maskViewIou(dm, db, gm.map(rleView), rleBoxes(gm), crowd, ious);
  }

  /** Images of the ground truth that received no detections count with their misses. */
  private finishImages(): void {
    const none = new Detections(new RleSlab());
    for (let r = 0; r < this.seen.length; r++) if (!this.seen[r]) this.addImage(r, none);
  }

  /** accumulate() + summarize(). Evaluates images that got no detections first. */
  result(): EvalResult {
    this.finishImages();
    const K = this.K;
    const precision = new Float64Array(T * R * K * A * M).fill(-1);
    const recall = new Float64Array(T * K * A * M).fill(-1);
    const pIdx = (t: number, r: number, k: number, a: number, m: number) => (((t * R + r) * K + k) * A + a) * M + m;
    const rIdx = (t: number, k: number, a: number, m: number) => ((t * K + k) * A + a) * M + m;
    const q = new Float64Array(R);
    const need = new Float64Array(R);
    for (let k = 0; k < K; k++) {
      const n = this.stores[k].n;
      const flat = this.stores[k].flat();
      const { scores, keys } = flat;
      // accumulate()'s order: score descending, ties by image rank, then rank within the image.
      const unsorted = new Uint32Array(n);
      for (let i = 0; i < n; i++) unsorted[i] = i;
      const order = sortDetections(unsorted, new Uint32Array(n), n, scores, undefined, keys);
      // Per max-detection cut, the codes of the detections it keeps, in that order.
      const cut = MAX_DETS.map(() => new Uint32Array(n));
      const cutLength = new Int32Array(M);
      for (let a = 0; a < A; a++) {
        const npig = this.npig[k * A + a];
        if (npig === 0) continue;
        recallNeeds(npig, need);
        const codes = flat.codes;
        // The three cuts nest (a detection within the first 1 is within the first 10 and 100): fill them in one pass.
        const cut0 = cut[0], cut1 = cut[1], cut2 = cut[2];
        const max0 = MAX_DETS[0], max1 = MAX_DETS[1], max2 = MAX_DETS[2];
        let n0 = 0, n1 = 0, n2 = 0;
        for (let i = 0; i < n; i++) {
          const d = order[i];
          const code = codes[d * A + a];
          // Ignored at every threshold (most detections, outside a small, medium or large range): precisionAt skips it anyway.
          if (code === IGN_EVERY_T) continue;
          const rank = keys[d] % RANK_SLOTS;
          if (rank < max2) {
            cut2[n2++] = code;
            if (rank < max1) {
              cut1[n1++] = code;
              if (rank < max0) cut0[n0++] = code;
            }
          }
        }
        cutLength[0] = n0;
        cutLength[1] = n1;
        cutLength[2] = n2;
        for (let m = 0; m < M; m++) {
          for (let t = 0; t < T; t++) {
            recall[rIdx(t, k, a, m)] = precisionAt(cut[m], cutLength[m], 2 * t, npig, need, q);
            // precision[t][r][k][a][m] for r = 0.. steps by K * A * M.
            const base = pIdx(t, 0, k, a, m), step = K * A * M;
            for (let j = 0; j < R; j++) precision[base + j * step] = q[j];
          }
        }
      }
    }
    return this.summarize(precision, recall);
  }

  private summarize(precision: Float64Array, recall: Float64Array): EvalResult {
    const K = this.K;
    const pIdx = (t: number, r: number, k: number, a: number, m: number) => (((t * R + r) * K + k) * A + a) * M + m;
    const rIdx = (t: number, k: number, a: number, m: number) => ((t * K + k) * A + a) * M + m;
    // np.where(iouThr == p.iouThrs): an exact comparison, as in summarize().
    const tAt = (thr: number) => [...IOU_THRS.keys()].filter((t) => IOU_THRS[t] === thr);
    const allT = [...IOU_THRS.keys()];
    // s[s > -1] in numpy's C order, then its mean (-1 when empty).
    const kept = new Float64Array(T * R * K);
    const mean = (n: number) => (n === 0 ? -1 : numpySum(kept, 0, n) / n);
    // Consecutive categories are A * M apart in both arrays; the index is stepped, not recomputed.
    const ap = (ts: number[], a: number, m: number, k0 = 0, k1 = K) => {
      let n = 0;
      for (let i = 0; i < ts.length; i++) {
        for (let r = 0; r < R; r++) {
          for (let k = k0, at = pIdx(ts[i], r, k0, a, m); k < k1; k++, at += A * M) {
            const v = precision[at];
            if (v > -1) kept[n++] = v;
          }
        }
      }
      return mean(n);
    };
    const ar = (a: number, m: number) => {
      let n = 0;
      for (let t = 0; t < T; t++) {
        for (let k = 0, at = rIdx(t, 0, a, m); k < K; k++, at += A * M) {
          const v = recall[at];
          if (v > -1) kept[n++] = v;
        }
      }
      return mean(n);
    };
    const summary: Summary = {
      AP: ap(allT, 0, 2),
      AP50: ap(tAt(0.5), 0, 2),
      AP75: ap(tAt(0.75), 0, 2),
      APs: ap(allT, 1, 2),
      APm: ap(allT, 2, 2),
      APl: ap(allT, 3, 2),
      AR1: ar(0, 0),
      AR10: ar(0, 1),
      AR100: ar(0, 2),
      ARs: ar(1, 2),
      ARm: ar(2, 2),
      ARl: ar(3, 2),
    };
    const perCategory = this.gt.categories.map((c, k) => ({ id: c.id, name: c.name, AP: ap(allT, 0, 2, k, k + 1) }));
    return {
      iouType: this.iouType,
      agnostic: this.gt.agnostic,
      summary,
      perCategory,
      precision,
      recall,
      images: this.gt.imageIds.length,
      detections: this.detections,
    };
  }
}

