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
