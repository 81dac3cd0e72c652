// COCO JSON (ground truth) load, validate and save. The format is the one
// pycocotools reads: `images`, `annotations` (bbox [x, y, w, h] in pixels,
// `area`, `iscrowd`, segmentation as polygons or RLE), `categories` (with
// `isthing` as in COCO panoptic, optional). Validation checks what would
// otherwise fail far away, in training or evaluation: every problem names the
// file and the annotation id (or the image / category entry), and all of them
// are reported at once, up to a cap, so a broken file is fixed in one pass.
//
// Loading is one JSON.parse: COCO train2017 instances (448 MB) fits Node's
// string limit and parses in seconds; saving streams one entry a line and
// renames into place, so a reader never sees half a file.
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { ImageRecord, Rle } from '../records.js';

/** Polygons: each a flat [x1, y1, x2, y2, …] in pixels, at least 3 points. */
export type CocoPolygons = number[][];
export type CocoSegmentation = CocoPolygons | Rle;

export interface CocoImage {
  id: number;
  file_name: string;
  width: number;
  height: number;
  [key: string]: unknown;
}

export interface CocoAnnotation {
  id: number;
  image_id: number;
  category_id: number;
  /** [x, y, w, h], pixels of the image, w and h ≥ 0. */
  bbox: [number, number, number, number];
  /** Mask area in pixels (box area when there is no mask); pycocotools' APs/m/l use it. */
  area: number;
  iscrowd: 0 | 1;
  segmentation?: CocoSegmentation;
  [key: string]: unknown;
}

export interface CocoCategory {
  id: number;
  name: string;
  supercategory?: string;
  /** 1 thing, 0 stuff (COCO panoptic's convention); absent means thing. */
  isthing?: 0 | 1;
  [key: string]: unknown;
}

export interface CocoDataset {
  info?: Record<string, unknown>;
  licenses?: unknown[];
  images: CocoImage[];
  annotations: CocoAnnotation[];
  categories: CocoCategory[];
  [key: string]: unknown;
}

export interface CocoProblem {
  /** e.g. 'annotation id 17 (annotations[3])', 'images[2] (id 5)', 'top level'. */
  where: string;
  message: string;
  annotationId?: number;
}

/** A COCO file that does not validate: every problem found (up to the cap), each with its place. */
export class CocoError extends Error {
  constructor(readonly file: string, readonly problems: CocoProblem[], readonly more = 0) {
    const lines = problems.map((p) => `  ${p.where}: ${p.message}`);
    if (more > 0) lines.push(`  … and ${more} more`);
    const n = problems.length + more;
    super(`${file}: ${n === 1 ? 'a problem' : `${n} problems`} in COCO JSON\n${lines.join('\n')}`);
    this.name = 'CocoError';
  }
}

export interface ValidateOptions {
  /** Also check that every image's file exists under this directory. */
  root?: string;
  /** Stop collecting after this many problems; default 20. */
  maxProblems?: number;
}

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);
const isFiniteNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function show(v: unknown): string {
  // JSON.parse turns 1e999 into Infinity, which JSON.stringify would print as null.
  if (typeof v === 'number') return String(v);
  if (Array.isArray(v)) return `[${v.slice(0, 8).map(show).join(', ')}${v.length > 8 ? ', …' : ''}]`;
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}…` : s;
}

class Problems {
  readonly list: CocoProblem[] = [];
  more = 0;
  constructor(readonly max: number) {}
  add(where: string, message: string, annotationId?: number): void {
    if (this.list.length < this.max) this.list.push({ where, message, ...(annotationId !== undefined ? { annotationId } : {}) });
    else this.more++;
  }
}

/** Why a segmentation is not one pycocotools can rasterise, or null. */
function segmentationProblem(seg: unknown, img: CocoImage | undefined): string | null {
  if (Array.isArray(seg)) {
    if (seg.length === 0) return 'segmentation is an empty list; omit it (box only) or give polygons';
    for (let k = 0; k < seg.length; k++) {
      const poly = seg[k];
      if (!Array.isArray(poly)) return `segmentation[${k}] is ${show(poly)}, not a polygon [x1, y1, x2, y2, …]`;
      if (poly.length < 6 || poly.length % 2 !== 0) return `segmentation[${k}] has ${poly.length} numbers; a polygon needs an even count, at least 6 (3 points)`;
      const bad = poly.findIndex((v) => !isFiniteNum(v));
      if (bad >= 0) return `segmentation[${k}][${bad}] is ${show(poly[bad])}, not a finite number`;
    }
    return null;
  }
  if (!isObj(seg)) return `segmentation is ${show(seg)}; expected polygons [[x1, y1, …], …] or RLE {"size": [h, w], "counts": …}`;
  const size = seg.size;
  if (!Array.isArray(size) || size.length !== 2 || !size.every((v) => isInt(v) && v >= 0)) {
    return `RLE size is ${show(size)}; expected [height, width]`;
  }
  if (img && isInt(img.width) && isInt(img.height) && (size[0] !== img.height || size[1] !== img.width)) {
    return `RLE size [${size[0]}, ${size[1]}] is not the image's [height, width] = [${img.height}, ${img.width}]`;
  }
  const counts = seg.counts;
  if (typeof counts === 'string') {
    // pycocotools' compressed counts use the characters '0' (48) to 'o' (111).
    for (let i = 0; i < counts.length; i++) {
      const c = counts.charCodeAt(i);
      if (c < 48 || c > 111) return `RLE counts has ${show(counts[i])} at ${i}, not a compressed-RLE character ('0'…'o')`;
    }
    return null;
  }
  if (!Array.isArray(counts)) return `RLE counts is ${show(counts)}; expected a compressed string or a list of run lengths`;
  let sum = 0;
  for (let i = 0; i < counts.length; i++) {
    const v = counts[i];
    if (!isInt(v) || v < 0) return `RLE counts[${i}] is ${show(v)}, not a non-negative integer`;
    sum += v;
  }
  if (sum !== size[0] * size[1]) return `RLE run lengths add up to ${sum}, not height × width = ${size[0] * size[1]}`;
  return null;
}

/**
 * Checks a parsed COCO object and returns it typed. Throws CocoError listing
 * every problem (up to `maxProblems`): a missing or duplicate id, an
 * annotation on an image or category that is not in the file, a box that is
 * not four finite numbers with x, y, w, h ≥ 0, a bad area, iscrowd or
 * segmentation, an image without file_name or size, and (with `root`) an
 * image whose file is missing. A file without `annotations` (an image-info
 * file) is read as having none.
 */
export function validateCoco(data: unknown, file: string, opts: ValidateOptions = {}): CocoDataset {
  const p = new Problems(opts.maxProblems ?? 20);
  if (!isObj(data)) {
    throw new CocoError(file, [{ where: 'top level', message: `expected an object with "images", "annotations", "categories", got ${Array.isArray(data) ? 'an array (a results file? those are loaded as detections, not ground truth)' : show(data)}` }]);
  }
  for (const key of ['images', 'categories'] as const) {
    if (!Array.isArray(data[key])) p.add('top level', `"${key}" ${key in data ? `is ${show(data[key])}, not an array` : 'is missing'}`);
  }
  if ('annotations' in data && !Array.isArray(data.annotations)) p.add('top level', `"annotations" is ${show(data.annotations)}, not an array`);
  if (p.list.length > 0) throw new CocoError(file, p.list);
  const images = data.images as unknown[];
  const categories = data.categories as unknown[];
  const annotations = (data.annotations ?? []) as unknown[];

  const imageAt = new Map<number, number>();
  images.forEach((im, i) => {
    if (!isObj(im)) return p.add(`images[${i}]`, `is ${show(im)}, not an object`);
    const where = `images[${i}]${isInt(im.id) ? ` (id ${im.id})` : ''}`;
    if (!isInt(im.id)) p.add(where, `id is ${show(im.id)}; image ids are integers`);
    else if (imageAt.has(im.id)) p.add(where, `duplicate image id ${im.id} (also images[${imageAt.get(im.id)}])`);
    else imageAt.set(im.id, i);
    if (typeof im.file_name !== 'string' || im.file_name === '') p.add(where, `file_name is ${show(im.file_name)}; give the image's path relative to the image root`);
    for (const k of ['width', 'height'] as const) {
      if (!isInt(im[k]) || (im[k] as number) <= 0) p.add(where, `${k} is ${show(im[k])}; expected a positive integer (pixels)`);
    }
    if (opts.root && typeof im.file_name === 'string' && im.file_name !== '') {
      const f = path.resolve(opts.root, im.file_name);
      if (!existsSync(f) || !statSync(f).isFile()) p.add(where, `image file not found: ${f}`);
    }
  });

  const categoryAt = new Map<number, number>();
  categories.forEach((c, i) => {
    if (!isObj(c)) return p.add(`categories[${i}]`, `is ${show(c)}, not an object`);
    const where = `categories[${i}]${isInt(c.id) ? ` (id ${c.id})` : ''}`;
    if (!isInt(c.id)) p.add(where, `id is ${show(c.id)}; category ids are integers`);
    else if (categoryAt.has(c.id)) p.add(where, `duplicate category id ${c.id} (also categories[${categoryAt.get(c.id)}])`);
    else categoryAt.set(c.id, i);
    if (typeof c.name !== 'string' || c.name === '') p.add(where, `name is ${show(c.name)}; expected a non-empty string`);
    if ('isthing' in c && c.isthing !== 0 && c.isthing !== 1) p.add(where, `isthing is ${show(c.isthing)}; expected 0 (stuff) or 1 (thing)`);
  });

  const annotationAt = new Map<number, number>();
  annotations.forEach((a, i) => {
    if (!isObj(a)) return p.add(`annotations[${i}]`, `is ${show(a)}, not an object`);
    const id = isInt(a.id) ? a.id : undefined;
    const where = id !== undefined ? `annotation id ${id} (annotations[${i}])` : `annotations[${i}] (no id)`;
    const add = (msg: string) => p.add(where, msg, id);
    if (id === undefined) add(`id is ${show(a.id)}; every ground-truth annotation needs a unique integer id`);
    else if (annotationAt.has(id)) add(`duplicate annotation id ${id} (also annotations[${annotationAt.get(id)}])`);
    else annotationAt.set(id, i);
    let img: CocoImage | undefined;
    if (!isInt(a.image_id)) add(`image_id is ${show(a.image_id)}; expected an integer image id`);
    else if (!imageAt.has(a.image_id)) add(`image_id ${a.image_id} is not in "images" (an annotation on an unknown image)`);
    else img = images[imageAt.get(a.image_id)!] as CocoImage;
    if (!isInt(a.category_id)) add(`category_id is ${show(a.category_id)}; expected an integer category id`);
    else if (!categoryAt.has(a.category_id)) {
      add(`category_id ${a.category_id} is not in "categories" (known: ${[...categoryAt.keys()].slice(0, 12).join(', ')}${categoryAt.size > 12 ? ', …' : ''})`);
    }
    const b = a.bbox;
    if (!Array.isArray(b) || b.length !== 4) add(`bbox is ${show(b)}; expected [x, y, width, height]`);
    else if (!b.every(isFiniteNum)) add(`bbox ${show(b)} has a value that is not a finite number`);
    else if (b[2] < 0 || b[3] < 0) add(`bbox ${show(b)} has a negative ${b[2] < 0 ? 'width' : 'height'}; COCO boxes are [x, y, width, height], not corners`);
    else if (b[0] < 0 || b[1] < 0) add(`bbox ${show(b)} starts at a negative ${b[0] < 0 ? 'x' : 'y'}; clip it to the image`);
    if (!isFiniteNum(a.area) || a.area < 0) add(`area is ${show(a.area)}; expected a finite number ≥ 0 (pycocotools' APs/m/l need it)`);
    if (a.iscrowd !== 0 && a.iscrowd !== 1) add(`iscrowd is ${show(a.iscrowd)}; expected 0 or 1`);
    if (a.segmentation !== undefined) {
      const why = segmentationProblem(a.segmentation, img);
      if (why) add(why);
    }
  });

  if (p.list.length > 0) throw new CocoError(file, p.list, p.more);
  return { ...data, images, annotations, categories } as CocoDataset;
}

// Node's longest string is 2^29 − 24 characters; a longer file cannot be one JSON.parse.
const MAX_JSON_BYTES = 2 ** 29 - 24;

function jsonPosition(text: string, message: string): string {
  const m = /position (\d+)/.exec(message);
  if (!m) return '';
  const pos = Number(m[1]);
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  return ` at line ${line}, column ${pos - before.lastIndexOf('\n')}`;
}

/** Reads and validates a COCO JSON file; throws CocoError (or an Error for unreadable files). */
export function loadCoco(file: string, opts: ValidateOptions = {}): CocoDataset {
  let size: number;
  try {
    size = statSync(file).size;
  } catch (e) {
    throw new Error(`cannot read COCO JSON ${file}: ${(e as Error).message}`);
  }
  if (size > MAX_JSON_BYTES) {
    throw new Error(`${file}: ${(size / 2 ** 20).toFixed(0)} MB is past what one JSON.parse can hold (${(MAX_JSON_BYTES / 2 ** 20).toFixed(0)} MB); split the file by images`);
  }
  const text = readFileSync(file, 'utf8');
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message;
    throw new CocoError(file, [{ where: `JSON${jsonPosition(text, msg)}`, message: `not valid JSON: ${msg}` }]);
  }
  return validateCoco(data, file, opts);
}

export interface SaveOptions {
  /** Validate before writing (default true): never write a file the loader would refuse. */
  validate?: boolean;
}

/**
 * Writes a COCO JSON file: validated first, then streamed one image,
 * annotation or category a line (diffable, and never one giant string), to a
 * temporary file renamed into place. Same dataset, same bytes.
 */
export function saveCoco(file: string, ds: CocoDataset, opts: SaveOptions = {}): void {
  if (opts.validate ?? true) validateCoco(ds, file);
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  let pending: string[] = [];
  let pendingChars = 0;
  const flush = () => {
    writeSync(fd, pending.join(''));
    pending = [];
    pendingChars = 0;
  };
  const put = (s: string) => {
    pending.push(s);
    pendingChars += s.length;
    if (pendingChars > 1 << 20) flush();
  };
  try {
    const { images, annotations, categories, ...rest } = ds;
    put('{');
    for (const [k, v] of Object.entries(rest)) if (v !== undefined) put(`${JSON.stringify(k)}: ${JSON.stringify(v)},\n`);
    const list = (key: string, items: readonly unknown[], last: boolean) => {
      put(`${JSON.stringify(key)}: [`);
      items.forEach((x, i) => put(`${i === 0 ? '\n' : ',\n'}${JSON.stringify(x)}`));
      put(`${items.length > 0 ? '\n' : ''}]${last ? '' : ',\n'}`);
    };
    list('images', images, false);
    list('annotations', annotations, false);
    list('categories', categories, true);
    put('}\n');
    flush();
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, file);
  } catch (e) {
    try {
      closeSync(fd);
    } catch {
      // already closed: the error came from the rename
    }
    if (existsSync(tmp)) unlinkSync(tmp);
    throw e;
  }
}

export interface CocoIndex {
  imagesById: Map<number, CocoImage>;
  categoriesById: Map<number, CocoCategory>;
  /** Each image's annotations in file order; images without any are absent. */
  annotationsByImage: Map<number, CocoAnnotation[]>;
}

/** pycocotools' createIndex: lookups by id, annotations grouped by image. */
export function indexCoco(ds: CocoDataset): CocoIndex {
  const annotationsByImage = new Map<number, CocoAnnotation[]>();
  for (const a of ds.annotations) {
    let list = annotationsByImage.get(a.image_id);
    if (!list) annotationsByImage.set(a.image_id, (list = []));
    list.push(a);
  }
  return {
    imagesById: new Map(ds.images.map((im) => [im.id, im])),
    categoriesById: new Map(ds.categories.map((c) => [c.id, c])),
    annotationsByImage,
  };
}

/** The dataset's images as image records (the input of decodeImages), in file order. */
export function cocoImageRecords(ds: CocoDataset): ImageRecord[] {
  return ds.images.map((im) => ({ image_id: im.id, file_name: im.file_name, width: im.width, height: im.height }));
}
