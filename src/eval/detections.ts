// Detections in, evaluation out: pycocotools' results format (one JSON array
// of {image_id, category_id, score, bbox?, segmentation?}) read as loadRes()
// reads it, or casl's prediction JSONL (one image a line) streamed so only
// one image's detections are in memory at a time.
//
// loadRes() decides from the FIRST detection how to read all of them, and
// casl does the same so the figures match: if it has a non-empty `bbox`, every
// detection's `area` is bbox w*h (even when evaluating masks) and a missing
// mask is the box's polygon; otherwise `area` is the mask's pixel count and a
// missing `bbox` is the mask's bounding box. casl's JSONL always carries boxes,
// so it is read the first way — exactly what pycocotools does with the same
// detections flattened into a results file.

import { openSync, readSync, closeSync, readFileSync } from 'node:fs';
import {
  MaskError, RleSlab, rleFromBox, rleViewStats, segmentationToRle,
  type Box, type RleStats, type RleView, type Segmentation,
} from '../geometry/mask.js';
import type { Rle } from '../records.js';
import { isErrorRecord } from '../records.js';
import type { OrError } from '../streams/stage.js';
import { CocoEvaluator, Detections, type EvalResult, type IouType } from './evaluator.js';
import { readGroundTruth, type GroundTruth, type ImageId } from './ground-truth.js';
import { PARSED_RLE, scanResults } from './results-file.js';

/** A detection the evaluator cannot take: says which one and what to do. */
export class DetectionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DetectionError';
  }
}

interface RawDetection {
  image_id?: ImageId;
  category_id?: number;
  score?: number;
  bbox?: number[];
  segmentation?: Segmentation | typeof PARSED_RLE;
}

export interface EvalReport extends EvalResult {
  /** Detections whose category is not in the ground truth: pycocotools leaves them out, so does casl. */
  unknownCategory: number;
  /** `{"error", "stage"}` lines of a JSONL: those images count as having no detections. */
  errorRecords: number;
  format: 'results-json' | 'predictions-jsonl';
}

function isBox(b: unknown): b is number[] {
  return Array.isArray(b) && b.length === 4 && b.every((v) => typeof v === 'number' && Number.isFinite(v)) && b[2] >= 0 && b[3] >= 0;
}

/** Turns raw detections into the evaluator's, checking each and saying where a bad one is. */
export class DetectionReader {
  /** loadRes()'s branch, fixed by the first detection. */
  private mode: 'box' | 'mask' | undefined;
  unknownCategory = 0;
  /** The detections' mask runs, all in one buffer. */
  readonly masks: RleSlab;

  /** `maskCapacity`: counts to reserve for the masks (a results file's byte length bounds them). */
  constructor(readonly gt: GroundTruth, readonly iouType: IouType, maskCapacity?: number) {
    this.masks = new RleSlab(maskCapacity);
  }

  rankOf(imageId: unknown, where: string): number {
    const rank = this.gt.rankOf.get(imageId as ImageId);
    if (rank === undefined) {
      throw new DetectionError(
        `${where}: image_id ${JSON.stringify(imageId)} is not an image of ${this.gt.source}; ` +
          'detections must be on the ground truth\'s images (pycocotools refuses them too) — evaluate against the ground truth they were made for',
      );
    }
    return rank;
  }

  /**
   * Checks one detection and appends it to `into` (whose run buffer must be
   * this reader's `masks`); `parsed`: the mask's runs, when the results
   * scanner already read them into `masks`.
   */
  read(raw: RawDetection, rank: number, where: string, into: Detections, parsed?: RleView): void {
    if (typeof raw !== 'object' || raw === null) throw new DetectionError(`${where}: a detection must be an object`);
    const { category_id: catId, score } = raw;
    if (typeof catId !== 'number' || !Number.isInteger(catId)) {
      throw new DetectionError(`${where}: "category_id" must be an integer, got ${JSON.stringify(catId)}`);
    }
    if (typeof score !== 'number' || !Number.isFinite(score)) {
      throw new DetectionError(`${where}: "score" must be a finite number, got ${JSON.stringify(score)}`);
    }
    let cat = 0;
    if (!this.gt.agnostic) {
      cat = this.gt.catIndex.get(catId) ?? -1;
      if (cat < 0) this.unknownCategory++;
    }
    const hasBox = Array.isArray(raw.bbox) && raw.bbox.length > 0;
    if (this.mode === undefined) {
      if (hasBox) this.mode = 'box';
      else if (raw.segmentation !== undefined) this.mode = 'mask';
      else throw new DetectionError(`${where}: a detection needs a "bbox" [x, y, w, h] or a "segmentation" (COCO RLE)`);
    }
    const h = this.gt.heights[rank], w = this.gt.widths[rank];
    if (raw.bbox !== undefined && !isBox(raw.bbox)) {
      throw new DetectionError(`${where}: bad box ${JSON.stringify(raw.bbox)}; COCO boxes are [x, y, width, height] of finite numbers with width, height >= 0`);
    }
    if (this.mode === 'box') {
      if (!hasBox) {
        throw new DetectionError(`${where}: no "bbox", but the first detection had one; like pycocotools' loadRes, casl reads all detections the way the first one is written — give every detection a bbox`);
      }
      const box = raw.bbox!;
      if (this.iouType === 'bbox') return into.add(cat, score, box[2] * box[3], box);
      let mask: RleView;
      let maskBox: Box;
      if (raw.segmentation !== undefined) ({ mask, box: maskBox } = this.mask(raw.segmentation, rank, where, parsed));
      else if (h < 0) throw new DetectionError(`${where}: no "segmentation", and image ${this.gt.imageIds[rank]} has no height/width to rasterise its box on`);
      else maskBox = rleViewStats((mask = this.masks.append(rleFromBox(box, h, w)))).box;
      return into.add(cat, score, box[2] * box[3], box, mask, maskBox);
    }
    if (raw.segmentation === undefined) {
      throw new DetectionError(`${where}: no "segmentation", but the first detection was a mask without a bbox; give every detection a segmentation`);
    }
    const { mask, area, box } = this.mask(raw.segmentation, rank, where, parsed);
    into.add(cat, score, area, raw.bbox ?? box, mask, box);
  }

  /** The mask of a detection, checked against its image, with its area and box. */
  private mask(segm: Segmentation | typeof PARSED_RLE, rank: number, where: string, parsed: RleView | undefined): { mask: RleView; area: number; box: Box } {
    const h = this.gt.heights[rank], w = this.gt.widths[rank];
    let mask: RleView;
    let stats: RleStats;
    try {
      if (parsed !== undefined) mask = parsed;
      else if (segm === PARSED_RLE) throw new Error('a scanned detection lost its mask');
      else if (segm !== null && typeof segm === 'object' && !Array.isArray(segm)) mask = this.masks.appendJson(segm as Rle);
      else mask = this.masks.append(segmentationToRle(segm, h, w));
      stats = rleViewStats(mask);
    } catch (e) {
      if (e instanceof MaskError) throw new DetectionError(`${where}: bad segmentation: ${e.message}`);
      throw e;
    }
    if (h >= 0 && (mask.h !== h || mask.w !== w)) {
      throw new DetectionError(
        `${where}: mask size [${mask.h}, ${mask.w}] differs from image ${this.gt.imageIds[rank]}'s [height, width] = [${h}, ${w}]; ` +
          'masks must be encoded at the original image size (COCO "size" is [h, w], not [w, h])',
      );
    }
    if (stats.length !== mask.h * mask.w) {
      throw new DetectionError(`${where}: mask counts cover ${stats.length} pixels but its size [${mask.h}, ${mask.w}] has ${mask.h * mask.w}; the RLE is corrupt`);
    }
    return { mask, area: stats.area, box: stats.box };
  }
}

/** A results file's detections, gathered per image in file order, then evaluated. */
class ResultsCollector {
  readonly reader: DetectionReader;
  private readonly dets: Detections;
  /** Per image rank, its detections' indices in `dets`. */
  private readonly perImage = new Map<number, number[]>();

  constructor(readonly gt: GroundTruth, readonly iouType: IouType, readonly source: string, maskCapacity?: number) {
    this.reader = new DetectionReader(gt, iouType, maskCapacity);
    this.dets = new Detections(this.reader.masks);
  }

  add(raw: RawDetection, i: number, parsed?: RleView): void {
    const where = `${this.source}: detection ${i}`;
    if (typeof raw !== 'object' || raw === null) throw new DetectionError(`${where}: a detection must be an object`);
    const rank = this.reader.rankOf(raw.image_id, where);
    const at = this.dets.n;
    this.reader.read(raw, rank, where, this.dets, parsed);
    const l = this.perImage.get(rank);
    if (l) l.push(at);
    else this.perImage.set(rank, [at]);
  }

  finish(): EvalReport {
    const evaluator = new CocoEvaluator(this.gt, this.iouType);
    for (const [rank, which] of this.perImage) evaluator.addImage(rank, this.dets, which);
    return { ...evaluator.result(), unknownCategory: this.reader.unknownCategory, errorRecords: 0, format: 'results-json' };
  }
}

/** Evaluates a pycocotools results array (already parsed). */
export function evaluateResults(gt: GroundTruth, anns: unknown, iouType: IouType, source: string): EvalReport {
  if (!Array.isArray(anns)) throw new DetectionError(`${source}: a results file is a JSON array of detections`);
  const c = new ResultsCollector(gt, iouType, source);
  anns.forEach((raw: RawDetection, i) => c.add(raw, i));
  return c.finish();
}

/**
 * Evaluates a results file's bytes: read by the results scanner (no JSON
 * tree in memory) when they are a JSON array, otherwise by JSON.parse, whose
 * error then says what is wrong. A bad detection is reported only once the
 * whole file is known to be JSON, as when it is parsed first.
 */
export function evaluateResultsBytes(gt: GroundTruth, bytes: Buffer, iouType: IouType, source: string): EvalReport {
  // Every count takes at least one byte of the file (segm only: boxes need no runs).
  const c = new ResultsCollector(gt, iouType, source, iouType === 'segm' ? bytes.length : undefined);
  let failure: { error: unknown } | undefined;
  const isArray = scanResults(bytes, c.reader.masks, (raw, i, parsed) => {
    if (failure) return;
    try {
      c.add(raw as RawDetection, i, parsed);
    } catch (error) {
      failure = { error };
    }
  });
  if (isArray) {
    if (failure) throw failure.error;
    return c.finish();
  }
  let anns: unknown;
  try {
    anns = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new DetectionError(`${source}: not valid JSON (${(e as Error).message}); detections are a JSON array (pycocotools' results format) or JSONL`);
  }
  return evaluateResults(gt, anns, iouType, source);
}

/**
 * Evaluates casl prediction JSONL (one image record a line, read with the
 * streams' readJsonl, so memory holds one image's detections at a time).
 * Error records from upstream stages are counted, their images having no
 * detections; a line that is not JSON at all is an error.
 */
export async function evaluateJsonl(
  gt: GroundTruth, input: string | NodeJS.ReadableStream, iouType: IouType, source: string,
): Promise<EvalReport> {
  const reader = new DetectionReader(gt, iouType);
  const evaluator = new CocoEvaluator(gt, iouType);
  const dets = new Detections(reader.masks);
  const firstRecord = new Map<number, number>();
  let errorRecords = 0;
  let recordNo = 0;
  // Loaded here: the streams (highland) cost a results file's evaluation tens of ms to import.
  const { readJsonl } = await import('../streams/jsonl.js');
  const records = readJsonl<{ image_id?: ImageId; instances?: unknown }>(input, { source }).toNodeStream({ objectMode: true });
  for await (const rec of records as AsyncIterable<OrError<{ image_id?: ImageId; instances?: unknown }>>) {
    if (isErrorRecord(rec)) {
      if (rec.stage === 'parse' && rec.file_name === source) {
        throw new DetectionError(`${source}: ${rec.error}; fix or remove that line (a cut-off last line means the writer was interrupted)`);
      }
      errorRecords++;
      continue;
    }
    recordNo++;
    const where = `${source}: record ${recordNo} (image_id ${JSON.stringify(rec.image_id)})`;
    if (!Array.isArray(rec.instances)) {
      throw new DetectionError(`${where}: a prediction record is {"image_id", "file_name", "instances": [...]} (or an error record {"error", "stage"})`);
    }
    const rank = reader.rankOf(rec.image_id, where);
    const earlier = firstRecord.get(rank);
    if (earlier !== undefined) {
      throw new DetectionError(`${where}: this image already had its predictions in record ${earlier}; write each image once`);
    }
    firstRecord.set(rank, recordNo);
    dets.clear();
    reader.masks.clear();
    const instances = rec.instances as RawDetection[];
    for (let i = 0; i < instances.length; i++) reader.read({ ...instances[i], image_id: rec.image_id }, rank, `${where}, instance ${i}`, dets);
    evaluator.addImage(rank, dets);
  }
  return { ...evaluator.result(), unknownCategory: reader.unknownCategory, errorRecords, format: 'predictions-jsonl' };
}

/** '[' starts a results array; '{' starts JSONL. */
function sniff(file: string): 'json' | 'jsonl' {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(4096);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) return 'jsonl';
      const s = buf.subarray(0, n).toString('utf8').trimStart();
      if (s.length > 0) return s[0] === '[' ? 'json' : 'jsonl';
    }
  } finally {
    closeSync(fd);
  }
}

export interface EvaluateOptions {
  gt: string | GroundTruth;
  /** A results JSON array or prediction JSONL file; '-' reads JSONL from `stdin`. */
  dets: string;
  iouType: IouType;
  agnostic?: boolean;
  stdin?: NodeJS.ReadableStream;
}

/** The whole of `casl eval`: load, match, accumulate, summarize. */
export async function evaluateFiles(opts: EvaluateOptions): Promise<EvalReport> {
  const gt = typeof opts.gt === 'string'
    ? readGroundTruth(opts.gt, { agnostic: opts.agnostic, masks: opts.iouType === 'segm' })
    : opts.gt;
  if (opts.dets === '-') return evaluateJsonl(gt, opts.stdin ?? process.stdin, opts.iouType, '<stdin>');
  let kind: 'json' | 'jsonl';
  try {
    kind = sniff(opts.dets);
  } catch (e) {
    throw new DetectionError(`cannot read detections ${opts.dets}: ${(e as Error).message}`);
  }
  if (kind === 'jsonl') return evaluateJsonl(gt, opts.dets, opts.iouType, opts.dets);
  let bytes: Buffer;
  try {
    bytes = readFileSync(opts.dets);
  } catch (e) {
    throw new DetectionError(`cannot read detections ${opts.dets}: ${(e as Error).message}`);
  }
  return evaluateResultsBytes(gt, bytes, opts.iouType, opts.dets);
}
