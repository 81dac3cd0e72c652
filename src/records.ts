// The records that flow between casl's stages, one JSON object per JSONL line
// (see DESIGN.md, "Records"). Boxes are COCO [x, y, w, h] in pixels of the
// original image; masks are COCO compressed RLE.

/** COCO compressed (string counts) or uncompressed (number counts) RLE. */
export interface Rle {
  size: [number, number]; // [h, w]
  counts: string | number[];
}

/** One image to process; `file_name` is relative to `--root`. */
export interface ImageRecord {
  image_id: number;
  file_name: string;
  width?: number;
  height?: number;
}

export interface Instance {
  bbox: [number, number, number, number];
  score: number;
  category_id: number;
  segmentation?: Rle;
}

/** What produced a prediction: enough to reproduce it. */
export interface PredictionMeta {
  model?: string; // hash of the weights
  backend?: string;
  aug?: string;
  views?: number;
  delta?: number;
  [key: string]: unknown;
}

/** A prediction or a pseudo label: the image fields plus its instances. */
export interface PredictionRecord extends ImageRecord {
  instances: Instance[];
  meta?: PredictionMeta;
}

/** A bad input, carried downstream instead of crashing the stream. */
export interface ErrorRecord {
  error: string;
  stage: string;
  file_name?: string;
  line?: number;
  image_id?: number;
}

export function isErrorRecord(x: unknown): x is ErrorRecord {
  return typeof x === 'object' && x !== null && typeof (x as ErrorRecord).error === 'string'
    && typeof (x as ErrorRecord).stage === 'string';
}

/**
 * Why a parsed line is not a prediction record, or null when it is one: a
 * numeric image_id and an instances array whose scores are finite numbers
 * and whose boxes are four finite numbers. `casl filter` and `casl view`
 * both use this rule, so they count the same images.
 */
export function predictionRecordProblem(x: unknown): string | null {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return 'not a JSON object';
  const r = x as Record<string, unknown>;
  if (typeof r.image_id !== 'number') return "missing numeric key 'image_id'";
  if (!Array.isArray(r.instances)) return "missing array key 'instances'";
  for (let j = 0; j < r.instances.length; j++) {
    const inst = r.instances[j] as Record<string, unknown> | null;
    if (typeof inst !== 'object' || inst === null) return `instances[${j}] is not an object`;
    if (typeof inst.score !== 'number' || !Number.isFinite(inst.score)) return `instances[${j}].score is not a finite number`;
    const b = inst.bbox;
    if (!Array.isArray(b) || b.length !== 4 || !b.every((v) => typeof v === 'number' && Number.isFinite(v))) {
      return `instances[${j}].bbox is not [x, y, w, h] of finite numbers`;
    }
  }
  return null;
}
