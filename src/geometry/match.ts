// Greedy matching of scored boxes to ground-truth boxes, the detection
// counting rule (pycocotools' per-threshold greedy match, class-agnostic):
// best score first, each ground-truth box taken at most once, by the
// unmatched one of highest IoU ≥ the threshold. Boxes are COCO [x, y, w, h].

/** IoU of two [x, y, w, h] boxes. */
export function iouXywh(a: readonly number[], b: readonly number[]): number {
  const iw = Math.min(a[0] + a[2], b[0] + b[2]) - Math.max(a[0], b[0]);
  const ih = Math.min(a[1] + a[3], b[1] + b[3]) - Math.max(a[1], b[1]);
  if (iw <= 0 || ih <= 0) return 0;
  const inter = iw * ih;
  return inter / (a[2] * a[3] + b[2] * b[3] - inter);
}

/**
 * For each ground-truth box, the score of the detection matched to it, or
 * −∞ when none is. `threshold` is the least IoU that matches.
 */
export function greedyMatch(
  dets: readonly { bbox: readonly number[]; score: number }[],
  gt: readonly (readonly number[])[],
  threshold = 0.5,
): number[] {
  const matched = new Array<number>(gt.length).fill(-Infinity);
  if (gt.length === 0) return matched;
  const order = dets.map((_, j) => j).sort((p, q) => dets[q].score - dets[p].score);
  for (const j of order) {
    let best = -1;
    let bestIou = threshold;
    for (let g = 0; g < gt.length; g++) {
      if (matched[g] !== -Infinity) continue;
      const o = iouXywh(dets[j].bbox, gt[g]);
      if (o >= bestIou) {
        bestIou = o;
        best = g;
      }
    }
    if (best >= 0) matched[best] = dets[j].score;
  }
  return matched;
}
