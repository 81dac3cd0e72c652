// How good are the pseudo labels? Class-agnostic precision and recall at
// IoU ≥ 0.5 against a hidden ground truth (the fixtures keep one for the
// unlabeled split). Greedy matching, best score first, each ground-truth
// box matched at most once, crowd regions left out — the usual detection
// counting, reported as a pair rather than an AP because pseudo labels are
// already cut at δ.
import { createReadStream, existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { CocoDataset } from '../io/coco.js';
import type { Instance } from '../records.js';

export interface Quality {
  images: number;
  gtInstances: number;
  pseudoInstances: number;
  truePositives: number;
  precision: number;
  recall: number;
}

function iou(a: readonly number[], b: readonly number[]): number {
  const iw = Math.min(a[0] + a[2], b[0] + b[2]) - Math.max(a[0], b[0]);
  const ih = Math.min(a[1] + a[3], b[1] + b[3]) - Math.max(a[1], b[1]);
  if (iw <= 0 || ih <= 0) return 0;
  const inter = iw * ih;
  return inter / (a[2] * a[3] + b[2] * b[3] - inter);
}

/** True positives of one image's instances against its gt boxes ([x, y, w, h]). */
export function matchImage(instances: readonly Instance[], gt: readonly (readonly number[])[], threshold = 0.5): number {
  const order = instances.map((_, i) => i).sort((a, b) => instances[b].score - instances[a].score);
  const used = new Uint8Array(gt.length);
  let tp = 0;
  for (const i of order) {
    let best = -1;
    let bestIou = threshold;
    for (let g = 0; g < gt.length; g++) {
      if (used[g]) continue;
      const v = iou(instances[i].bbox, gt[g]);
      if (v >= bestIou) {
        bestIou = v;
        best = g;
      }
    }
    if (best >= 0) {
      used[best] = 1;
      tp += 1;
    }
  }
  return tp;
}

async function* records(file: string): AsyncGenerator<{ image_id: number; instances?: Instance[] }> {
  if (!existsSync(file)) return;
  for await (const line of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
    if (line.trim()) yield JSON.parse(line) as { image_id: number; instances?: Instance[] };
  }
}

/**
 * Precision and recall of the kept pseudo labels (`out`) over every image
 * the run accounted for (kept or dropped as empty), against `gt`.
 */
export async function pseudoLabelQuality(gt: CocoDataset, out: string, dropped: string): Promise<Quality> {
  const boxes = new Map<number, number[][]>();
  for (const a of gt.annotations) {
    if (a.iscrowd) continue;
    let list = boxes.get(a.image_id);
    if (!list) boxes.set(a.image_id, (list = []));
    list.push(a.bbox);
  }
  const known = new Set(gt.images.map((im) => im.id));
  const q: Quality = { images: 0, gtInstances: 0, pseudoInstances: 0, truePositives: 0, precision: 0, recall: 0 };
  for (const file of [out, dropped]) {
    for await (const rec of records(file)) {
      if (!known.has(rec.image_id)) {
        throw new Error(`${file}: image_id ${rec.image_id} is not in the ground truth: image ids derive from file_name relative to --root, `
          + 'so --root must be the folder the ground truth\'s file_names are relative to (e.g. data/fixtures/images/unlabeled)');
      }
      const g = boxes.get(rec.image_id) ?? [];
      const inst = rec.instances ?? [];
      q.images += 1;
      q.gtInstances += g.length;
      q.pseudoInstances += inst.length;
      q.truePositives += matchImage(inst, g);
    }
  }
  q.precision = q.pseudoInstances ? q.truePositives / q.pseudoInstances : 0;
  q.recall = q.gtInstances ? q.truePositives / q.gtInstances : 0;
  return q;
}

export function formatQuality(q: Quality): string {
  return `pseudo labels vs hidden ground truth (class-agnostic, IoU ≥ 0.5, ${q.images} images): `
    + `precision ${q.precision.toFixed(3)} (${q.truePositives}/${q.pseudoInstances}), `
    + `recall ${q.recall.toFixed(3)} (${q.truePositives}/${q.gtInstances})\n`;
}
