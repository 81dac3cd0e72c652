// Ground truth for the viewer's recall filter: a COCO JSON reduced to the
// boxes of each image, and the class-agnostic matching of a prediction record
// to them at IoU ≥ 0.5 (pycocotools' greedy rule: predictions by descending
// score, each takes the unmatched GT box it overlaps most).
//
// Greedy matching in score order has a property the viewer leans on: the
// matches made by the predictions scoring > δ do not depend on the ones
// below δ. So matching once with every prediction, and keeping for each GT
// box the score of the prediction that took it, gives the recall at every δ:
// recall(δ) = #{GT boxes whose match scored > δ} / #GT boxes.
import { greedyMatch } from '../geometry/match.js';
import { readFile } from 'node:fs/promises';
import type { PredictionRecord } from '../records.js';
import { UsageError } from '../cli/command.js';

export const MATCH_IOU = 0.5;

export interface GtImage {
  id: number;
  file_name: string;
  /** Non-crowd boxes [x, y, w, h]; crowd regions do not count toward recall. */
  boxes: number[][];
  crowd: number[][];
}

export class GroundTruth {
  private readonly byId = new Map<number, GtImage>();
  private readonly byName = new Map<string, GtImage>();

  constructor(images: GtImage[], readonly categories: Record<number, string> = {}) {
    for (const im of images) {
      this.byId.set(im.id, im);
      this.byName.set(im.file_name, im);
    }
  }

  get size(): number {
    return this.byId.size;
  }

  /** The GT image of a record: by image_id when its file name agrees (or is absent), else by file_name. */
  lookup(rec: { image_id?: number; file_name?: string }): GtImage | undefined {
    const im = rec.image_id === undefined ? undefined : this.byId.get(rec.image_id);
    if (rec.file_name === undefined) return im;
    if (im && (im.file_name === rec.file_name || !this.byName.has(rec.file_name))) return im;
    return this.byName.get(rec.file_name) ?? im;
  }

  static async load(file: string): Promise<GroundTruth> {
    let data: unknown;
    try {
      data = JSON.parse(await readFile(file, 'utf8'));
    } catch (e) {
      throw new UsageError(`--gt ${file}: cannot read it as JSON (${(e as Error).message}); give a COCO annotation file`);
    }
    const coco = data as { images?: unknown; annotations?: unknown };
    if (!Array.isArray(coco.images) || !Array.isArray(coco.annotations)) {
      throw new UsageError(`--gt ${file}: not a COCO annotation file (needs 'images' and 'annotations' arrays)`);
    }
    const images = new Map<number, GtImage>();
    coco.images.forEach((im: { id?: unknown; file_name?: unknown }, k: number) => {
      if (typeof im?.id !== 'number' || typeof im.file_name !== 'string') {
        throw new UsageError(`--gt ${file}: images[${k}] needs a numeric 'id' and a string 'file_name'`);
      }
      images.set(im.id, { id: im.id, file_name: im.file_name, boxes: [], crowd: [] });
    });
    coco.annotations.forEach((a: { image_id?: unknown; bbox?: unknown; iscrowd?: unknown }, k: number) => {
      const im = typeof a?.image_id === 'number' ? images.get(a.image_id) : undefined;
      if (!im) throw new UsageError(`--gt ${file}: annotations[${k}].image_id ${JSON.stringify(a?.image_id)} is not in 'images'`);
      const b = a.bbox;
      if (!Array.isArray(b) || b.length !== 4 || !b.every((v) => typeof v === 'number' && Number.isFinite(v))) {
        throw new UsageError(`--gt ${file}: annotations[${k}].bbox is not [x, y, w, h] of numbers`);
      }
      (a.iscrowd ? im.crowd : im.boxes).push(b as number[]);
    });
    const categories: Record<number, string> = {};
    if (Array.isArray((coco as { categories?: unknown }).categories)) {
      for (const c of (coco as { categories: { id?: unknown; name?: unknown }[] }).categories) {
        if (typeof c?.id === 'number' && typeof c.name === 'string') categories[c.id] = c.name;
      }
    }
    return new GroundTruth([...images.values()], categories);
  }
}

export { iouXywh as iou } from '../geometry/match.js';

/**
 * For each non-crowd GT box of the record's image, the score of the
 * prediction matched to it (−∞ when none). Empty when the image has no GT.
 */
export function matchToGroundTruth(rec: PredictionRecord, gt: GroundTruth): number[] {
  const im = gt.lookup(rec);
  return im ? greedyMatch(rec.instances, im.boxes, MATCH_IOU) : [];
}
