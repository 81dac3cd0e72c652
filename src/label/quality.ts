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
import { greedyMatch } from '../geometry/match.js';

export interface Quality {
  images: number;
  gtInstances: number;
  pseudoInstances: number;
  truePositives: number;
  precision: number;
  recall: number;
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
      q.truePositives += greedyMatch(inst, g).filter((score) => score !== -Infinity).length;
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
