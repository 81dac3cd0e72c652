// How results are shown: pycocotools' summarize() lines, character for
// character, a per-category table, and the --json object.

import { AREA_LBL, IOU_THRS, MAX_DETS, formatFixed3 } from './params.js';
import { SUMMARY_KEYS, type EvalResult, type SummaryKey } from './evaluator.js';

interface Line {
  ap: boolean;
  iouThr?: number;
  area: (typeof AREA_LBL)[number];
  maxDets: number;
}

/** summarize()'s _summarizeDets, in order. */
const LINES: Record<SummaryKey, Line> = {
  AP: { ap: true, area: 'all', maxDets: MAX_DETS[2] },
  AP50: { ap: true, iouThr: 0.5, area: 'all', maxDets: MAX_DETS[2] },
  AP75: { ap: true, iouThr: 0.75, area: 'all', maxDets: MAX_DETS[2] },
  APs: { ap: true, area: 'small', maxDets: MAX_DETS[2] },
  APm: { ap: true, area: 'medium', maxDets: MAX_DETS[2] },
  APl: { ap: true, area: 'large', maxDets: MAX_DETS[2] },
  AR1: { ap: false, area: 'all', maxDets: MAX_DETS[0] },
  AR10: { ap: false, area: 'all', maxDets: MAX_DETS[1] },
  AR100: { ap: false, area: 'all', maxDets: MAX_DETS[2] },
  ARs: { ap: false, area: 'small', maxDets: MAX_DETS[2] },
  ARm: { ap: false, area: 'medium', maxDets: MAX_DETS[2] },
  ARl: { ap: false, area: 'large', maxDets: MAX_DETS[2] },
};

/** ' {:<18} {} @[ IoU={:<9} | area={:>6s} | maxDets={:>3d} ] = {:0.3f}' */
export function summaryLines(result: EvalResult): string[] {
  return SUMMARY_KEYS.map((key) => {
    const l = LINES[key];
    const title = (l.ap ? 'Average Precision' : 'Average Recall').padEnd(18);
    const type = l.ap ? '(AP)' : '(AR)';
    const iou = l.iouThr === undefined
      ? `${IOU_THRS[0].toFixed(2)}:${IOU_THRS[IOU_THRS.length - 1].toFixed(2)}`
      : l.iouThr.toFixed(2);
    return ` ${title} ${type} @[ IoU=${iou.padEnd(9)} | area=${l.area.padStart(6)} | maxDets=${String(l.maxDets).padStart(3)} ] = ${formatFixed3(result.summary[key])}`;
  });
}

/** Per-category AP as a Markdown table, in category id order; '-' where a category has no ground truth. */
export function perCategoryTable(result: EvalResult): string[] {
  const rows = result.perCategory.map((c) => [String(c.id), c.name, c.AP < 0 ? '-' : (100 * c.AP).toFixed(1)]);
  const head = ['id', 'category', `AP (${result.iouType}${result.agnostic ? ', agnostic' : ''}) ×100`];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => '| ' + r.map((c, i) => (i === 2 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | ') + ' |';
  return [line(head), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...rows.map(line)];
}

/** The --json object: the 12 figures under pycocotools' names, then per category. */
export function summaryJson(result: EvalResult): Record<string, unknown> {
  return {
    ...result.summary,
    per_category: result.perCategory.map((c) => ({ id: c.id, name: c.name, AP: c.AP })),
    iou_type: result.iouType,
    agnostic: result.agnostic,
    images: result.images,
    detections: result.detections,
  };
}
