// Periodic evaluation during training: the detector on every image of a
// val COCO JSON (letterboxed, no augmentation), then casl eval's COCO
// evaluator. Class-agnostic runs are scored as AP^det-a (every category →
// "object"), class-specific ones as AP^det.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { decodeLetterboxed, toFloat32 } from '../io/decode.js';
import { evaluateResults } from '../eval/detections.js';
import { SUMMARY_KEYS, type Summary } from '../eval/evaluator.js';
import { readGroundTruth } from '../eval/ground-truth.js';
import type { Detector } from '../model/detector.js';
import { type View, predict, toInstances } from '../model/predict.js';

export interface ValSet {
  file: string;
  root: string;
  agnostic: boolean;
  images: { id: number; file_name: string }[];
}

export function openValSet(file: string, root: string | undefined, agnostic: boolean): ValSet {
  const json = JSON.parse(readFileSync(file, 'utf8')) as { images?: { id: number; file_name: string }[] };
  if (!Array.isArray(json.images)) throw new Error(`${file}: not a COCO JSON file (no 'images' array)`);
  return { file, root: root ?? path.dirname(file), agnostic, images: json.images.map((i) => ({ id: i.id, file_name: i.file_name })) };
}

export interface EvalFigures extends Summary {
  images: number;
  detections: number;
  seconds: number;
}

/**
 * AP of `det` on the val set. `categoryIds[k]` is the category id of
 * classifier channel k (ignored when agnostic: every detection is category 1).
 */
export async function evaluateDetector(
  det: Detector, val: ValSet, categoryIds: number[], batchSize = 8,
): Promise<EvalFigures> {
  const t0 = performance.now();
  const S = det.config.inputSize;
  const gt = readGroundTruth(val.file, { agnostic: val.agnostic });
  const results: { image_id: number; category_id: number; score: number; bbox: number[] }[] = [];
  for (let i = 0; i < val.images.length; i += batchSize) {
    const chunk = val.images.slice(i, i + batchSize);
    const decoded = await Promise.all(chunk.map((im) => decodeLetterboxed(path.join(val.root, im.file_name), S)));
    const data = new Float32Array(chunk.length * S * S * 3);
    const views: View[] = decoded.map((d, b) => {
      toFloat32(d.image, data, b * S * S * 3);
      return { width: d.width, height: d.height, letterbox: d.letterbox };
    });
    const x = tf.tensor4d(data, [chunk.length, S, S, 3]);
    try {
      const dets = await predict(det, x, views);
      dets.forEach((d, b) => {
        for (const inst of toInstances(d, val.agnostic ? categoryIds.map(() => 1) : categoryIds)) {
          results.push({ image_id: chunk[b].id, category_id: inst.category_id, score: inst.score, bbox: inst.bbox });
        }
      });
    } finally {
      x.dispose();
    }
  }
  const report = evaluateResults(gt, results, 'bbox', `${val.file} (during training)`);
  const figures = Object.fromEntries(SUMMARY_KEYS.map((k) => [k, report.summary[k]])) as Summary;
  return { ...figures, images: val.images.length, detections: results.length, seconds: (performance.now() - t0) / 1000 };
}
