// A COCO ground-truth file indexed the way pycocotools' COCO + COCOeval see
// it: images sorted by id (p.imgIds), categories sorted by id (p.catIds),
// each image's annotations kept in file order (imgToAnns), annotations of
// unknown images or categories left out (getAnnIds filters them), and
// `ignore` = iscrowd. In agnostic mode every category is 1 ("object").
//
// Memory: the file is read element by element (each image, annotation and
// category is parsed on its own) into typed columns, polygons into one
// coordinate slab, so a ground truth of 100,000 images costs tens of MB, not
// the several hundred a whole-file JSON.parse would.

import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import type { Segmentation } from '../geometry/mask.js';
import type { Rle } from '../records.js';

export type ImageId = number | string;

/** A malformed ground truth: says where and what to do. */
export class GroundTruthError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GroundTruthError';
  }
}

export interface Category {
  id: number;
  name: string;
}

export interface GroundTruth {
  /** Where it came from, for messages. */
  source: string;
  /** Sorted unique image ids; an image's index here is its rank. */
  imageIds: ImageId[];
  rankOf: Map<ImageId, number>;
  /** Per rank; -1 when the image has no height/width. */
  heights: Int32Array;
  widths: Int32Array;
  /** Sorted category ids (one, id 1, when agnostic). */
  categories: Category[];
  catIndex: Map<number, number>;
  /** Annotations of image rank r: annOrder[annStart[r] .. annStart[r + 1]), in file order. */
  annStart: Int32Array;
  annOrder: Int32Array;
  annId: Float64Array;
  annCat: Int32Array;
  annArea: Float64Array;
  annCrowd: Uint8Array;
  /** [x, y, w, h] per annotation; NaN at x when it has no bbox. */
  annBox: Float64Array;
  /** Position in the file's `annotations`, for messages. */
  annFileIndex: Int32Array;
  /** The annotation's segmentation (polygons as typed arrays), or undefined. */
  segmentation(j: number): Segmentation | undefined;
  agnostic: boolean;
}

interface RawAnnotation {
  id?: unknown;
  image_id?: unknown;
  category_id?: unknown;
  area?: unknown;
  iscrowd?: unknown;
  bbox?: unknown;
  segmentation?: unknown;
}

/** np.unique's order: numbers ascending, or strings by code point. */
export function sortIds(ids: ImageId[]): ImageId[] {
  const uniq = [...new Set(ids)];
  if (uniq.every((x) => typeof x === 'number')) return (uniq as number[]).sort((a, b) => a - b);
  if (uniq.every((x) => typeof x === 'string')) return (uniq as string[]).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  throw new GroundTruthError('image ids mix numbers and strings; use one type');
}

/** A typed array that grows by doubling. */
class Column<A extends Float64Array | Int32Array | Uint8Array> {
  n = 0;
  constructor(private data: A, private readonly make: (n: number) => A) {}

  push(v: number): void {
    if (this.n === this.data.length) {
      const grown = this.make(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.n++] = v;
  }

  /** The filled part (a view). */
  values(): A {
    return this.data.subarray(0, this.n) as A;
  }
}

const f64 = (n: number) => new Float64Array(n);
const i32 = (n: number) => new Int32Array(n);
const u8 = (n: number) => new Uint8Array(n);

/**
 * Collects a COCO file's elements in any order (annotations may come before
 * images), then indexes them. Each element is checked only if evaluation
 * will use it, as pycocotools only touches those.
 */
class GroundTruthBuilder {
  private images: { id: ImageId; height?: unknown; width?: unknown }[] = [];
  private cats: Category[] = [];
  private annImage: ImageId[] = [];
  private annId = new Column(f64(1024), f64);
  private annCat = new Column(f64(1024), f64);
  private annArea = new Column(f64(1024), f64);
  private annCrowd = new Column(u8(1024), u8);
  private annBox = new Column(f64(4096), f64);
  private annBadBox: Map<number, unknown> = new Map();
  // Polygons: annotation j owns parts [partFirst[j], partFirst[j + 1]); part p is coords[partStart[p], partStart[p + 1]).
  private partFirst = new Column(i32(1024), i32);
  private partStart = new Column(i32(1024), i32);
  private coords = new Column(f64(16384), f64);
  /** Segmentations that are not a list of numeric polygons (RLE, or malformed), by annotation. */
  private otherSegm: Map<number, unknown> = new Map();

  constructor(readonly source: string, readonly agnostic: boolean, readonly masks: boolean) {
    this.partStart.push(0);
  }

  addImage(im: unknown, i: number): void {
    const o = im as { id?: unknown; height?: unknown; width?: unknown };
    if (typeof o !== 'object' || o === null || (typeof o.id !== 'number' && typeof o.id !== 'string')) {
      throw new GroundTruthError(`${this.source}: images[${i}] has no "id"`);
    }
    this.images.push({ id: o.id, height: o.height, width: o.width });
  }

  addCategory(c: unknown, i: number): void {
    const o = c as { id?: unknown; name?: unknown };
    if (typeof o !== 'object' || o === null || !Number.isInteger(o.id)) {
      throw new GroundTruthError(`${this.source}: categories[${i}] has no integer "id"`);
    }
    this.cats.push({ id: o.id as number, name: typeof o.name === 'string' ? o.name : String(o.id) });
  }

  addAnnotation(a: RawAnnotation, i: number): void {
    if (typeof a !== 'object' || a === null) throw new GroundTruthError(`${this.source}: annotations[${i}] is not an object`);
    this.annImage.push(a.image_id as ImageId);
    this.annId.push(typeof a.id === 'number' ? a.id : NaN);
    this.annCat.push(typeof a.category_id === 'number' ? a.category_id : NaN);
    this.annArea.push(typeof a.area === 'number' && Number.isFinite(a.area) ? a.area : NaN);
    this.annCrowd.push(a.iscrowd ? 1 : 0);
    const b = a.bbox;
    const goodBox = Array.isArray(b) && b.length === 4 && b.every((v) => typeof v === 'number' && Number.isFinite(v));
    for (let k = 0; k < 4; k++) this.annBox.push(goodBox ? (b as number[])[k] : NaN);
    if (b !== undefined && !goodBox) this.annBadBox.set(i, b);
    this.partFirst.push(this.partStart.n - 1);
    const s = this.masks ? a.segmentation : undefined;
    if (Array.isArray(s) && s.every((p) => Array.isArray(p) && p.every((v) => typeof v === 'number' && Number.isFinite(v)))) {
      for (const poly of s as number[][]) {
        for (const v of poly) this.coords.push(v);
        this.partStart.push(this.coords.n);
      }
    } else if (s !== undefined) {
      this.otherSegm.set(i, s);
    }
  }

  finish(): GroundTruth {
    const { source, agnostic } = this;
    this.partFirst.push(this.partStart.n - 1);
    const imageIds = sortIds(this.images.map((im) => im.id));
    const rankOf = new Map<ImageId, number>(imageIds.map((id, r) => [id, r]));
    const heights = new Int32Array(imageIds.length).fill(-1);
    const widths = new Int32Array(imageIds.length).fill(-1);
    for (const im of this.images) {
      const r = rankOf.get(im.id)!;
      if (Number.isInteger(im.height) && Number.isInteger(im.width)) {
        heights[r] = im.height as number;
        widths[r] = im.width as number;
      }
    }
    this.images = [];
    const categories: Category[] = agnostic
      ? [{ id: 1, name: 'object' }]
      : [...new Map(this.cats.map((c) => [c.id, c])).values()].sort((a, b) => a.id - b.id);
    const catIndex = new Map(categories.map((c, k) => [c.id, k]));

    const ids = this.annId.values(), catIds = this.annCat.values(), areas = this.annArea.values();
    const total = this.annImage.length;
    const ranks = new Int32Array(total).fill(-1);
    const perImage = new Int32Array(imageIds.length + 1);
    let n = 0;
    for (let i = 0; i < total; i++) {
      const r = rankOf.get(this.annImage[i]);
      if (r === undefined || (!agnostic && !catIndex.has(catIds[i]))) continue;
      const where = `${source}: annotations[${i}]${Number.isNaN(ids[i]) ? '' : ` (id ${ids[i]})`}`;
      if (Number.isNaN(areas[i])) {
        throw new GroundTruthError(`${where} has no numeric "area"; COCO's area ranges (small/medium/large) are read from it — add it (the mask's pixel count, or w*h for boxes)`);
      }
      if (Number.isNaN(ids[i])) {
        throw new GroundTruthError(`${where} has no numeric "id"; matches are recorded by annotation id — give every annotation a unique id`);
      }
      if (this.annBadBox.has(i)) {
        throw new GroundTruthError(`${where}: "bbox" must be [x, y, w, h] of finite numbers, got ${JSON.stringify(this.annBadBox.get(i))}`);
      }
      ranks[i] = r;
      perImage[r + 1]++;
      n++;
    }
    this.annImage = [];
    const annStart = new Int32Array(imageIds.length + 1);
    for (let r = 0; r < imageIds.length; r++) annStart[r + 1] = annStart[r] + perImage[r + 1];
    const fill = annStart.slice(0, imageIds.length);
    const annOrder = new Int32Array(n);
    const annFileIndex = new Int32Array(n);
    const annId = new Float64Array(n), annCat = new Int32Array(n), annArea = new Float64Array(n);
    const annCrowd = new Uint8Array(n), annBox = new Float64Array(n * 4);
    const boxes = this.annBox.values(), crowds = this.annCrowd.values();
    let j = 0;
    for (let i = 0; i < total; i++) {
      const r = ranks[i];
      if (r < 0) continue;
      annOrder[fill[r]++] = j;
      annFileIndex[j] = i;
      annId[j] = ids[i];
      annCat[j] = agnostic ? 0 : catIndex.get(catIds[i])!;
      annArea[j] = areas[i];
      annCrowd[j] = crowds[i];
      annBox.set(boxes.subarray(i * 4, i * 4 + 4), j * 4);
      j++;
    }
    // Exact-size copies: the columns' doubling slack is freed with the builder.
    const partFirst = this.partFirst.values().slice(), partStart = this.partStart.values().slice();
    const coords = this.coords.values().slice();
    const otherSegm = this.otherSegm;
    return {
      source, imageIds, rankOf, heights, widths, categories, catIndex, annStart, annOrder,
      annId, annCat, annArea, annCrowd, annBox, annFileIndex, agnostic,
      segmentation(k: number): Segmentation | undefined {
        const i = annFileIndex[k];
        if (otherSegm.has(i)) return otherSegm.get(i) as Rle;
        const first = partFirst[i], last = partFirst[i + 1];
        if (first === last) return undefined;
        const parts: Float64Array[] = [];
        for (let p = first; p < last; p++) parts.push(coords.subarray(partStart[p], partStart[p + 1]));
        return parts;
      },
    };
  }
}

/** Indexes a COCO ground truth already parsed. */
export interface GroundTruthOptions {
  /** Map every category to one ("object"). */
  agnostic?: boolean;
  /** Keep segmentations (needed for segm IoU only); default true. */
  masks?: boolean;
}

export function indexGroundTruth(json: unknown, source: string, opts: GroundTruthOptions = {}): GroundTruth {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new GroundTruthError(`${source}: a COCO ground-truth file is an object with "images", "annotations", "categories"`);
  }
  const coco = json as Record<string, unknown>;
  for (const key of ['images', 'annotations', 'categories']) {
    if (!Array.isArray(coco[key])) throw new GroundTruthError(`${source}: "${key}" must be an array`);
  }
  const b = new GroundTruthBuilder(source, opts.agnostic ?? false, opts.masks ?? true);
  (coco.images as unknown[]).forEach((x, i) => b.addImage(x, i));
  (coco.categories as unknown[]).forEach((x, i) => b.addCategory(x, i));
  (coco.annotations as RawAnnotation[]).forEach((x, i) => b.addAnnotation(x, i));
  return b.finish();
}

/** Files up to this size are parsed whole (JSON.parse is native and fast); larger ones element by element. */
const WHOLE_FILE_BYTES = 32 * 2 ** 20;

/** Reads and indexes a COCO ground-truth file; a large one one element at a time, so memory stays small. */
export function readGroundTruth(file: string, opts: GroundTruthOptions = {}): GroundTruth {
  let size: number;
  try {
    size = statSync(file).size;
  } catch (e) {
    throw new GroundTruthError(`cannot read ground truth ${file}: ${(e as Error).message}`);
  }
  if (size <= WHOLE_FILE_BYTES) {
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(file, 'utf8').replace(/^\ufeff/, ''));
    } catch (e) {
      throw new GroundTruthError(`${file}: not valid JSON (${(e as Error).message}); a COCO ground-truth file is one JSON object`);
    }
    return indexGroundTruth(json, file, opts);
  }
  return readGroundTruthStreamed(file, opts);
}

/** readGroundTruth's element-by-element reader (exported for tests of large-file behaviour on small files). */
export function readGroundTruthStreamed(file: string, opts: GroundTruthOptions = {}): GroundTruth {
  const b = new GroundTruthBuilder(file, opts.agnostic ?? false, opts.masks ?? true);
  const seen = new Set<string>();
  scanCocoFile(file, (key, element, i) => {
    seen.add(key);
    if (i < 0) return;
    if (key === 'images') b.addImage(element, i);
    else if (key === 'categories') b.addCategory(element, i);
    else b.addAnnotation(element as RawAnnotation, i);
  });
  for (const key of ['images', 'annotations', 'categories']) {
    if (!seen.has(key)) throw new GroundTruthError(`${file}: "${key}" must be an array`);
  }
  return b.finish();
}

const ARRAYS = new Set(['images', 'annotations', 'categories']);
const [QUOTE, BACKSLASH, LBRACE, RBRACE, LBRACKET, RBRACKET, COMMA, COLON] = [0x22, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a];

/**
 * Walks a COCO JSON file's bytes and hands each element of its top-level
 * "images", "annotations" and "categories" arrays to `onElement`, parsed on
 * its own; other keys are skipped. Calls with an empty array mark the key as
 * seen. Memory: one read buffer and one element at a time.
 */
function scanCocoFile(file: string, onElement: (key: string, element: unknown, index: number) => void): void {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw new GroundTruthError(`cannot read ground truth ${file}: ${(e as Error).message}`);
  }
  const bad = (what: string, offset: number) =>
    new GroundTruthError(`${file}: not a COCO ground-truth JSON object (${what} at byte ${offset}); it must be {"images": [...], "annotations": [...], "categories": [...]}`);
  try {
    const buf = Buffer.alloc(1 << 20);
    let base = 0; // file offset of buf[0]
    let depth = 0;
    let inString = false;
    let escape = false;
    // Key of the current top-level value, and whether we are collecting it.
    let key = '';
    let keyBytes: number[] | null = null;
    let afterColon = false;
    let arrayKey: string | null = null; // inside one of ARRAYS, at depth 2 between elements
    let element: Buffer[] | null = null; // bytes of the element being read
    let elementStart = 0;
    let index = 0;
    let started = false;
    for (;;) {
      const len = readSync(fd, buf, 0, buf.length, null);
      if (len === 0) break;
      for (let p = 0; p < len; p++) {
        const c = buf[p];
        if (inString) {
          if (keyBytes && !(c === QUOTE && !escape)) keyBytes.push(c);
          if (escape) escape = false;
          else if (c === BACKSLASH) escape = true;
          else if (c === QUOTE) {
            inString = false;
            if (keyBytes) {
              key = Buffer.from(keyBytes).toString('utf8');
              keyBytes = null;
            }
          }
          continue;
        }
        if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) continue;
        if (!started) {
          // A UTF-8 byte order mark before the object is tolerated.
          if (base + p < 3 && (c === 0xef || c === 0xbb || c === 0xbf)) continue;
          if (c !== LBRACE) throw bad('no opening {', base + p);
          started = true;
          depth = 1;
          continue;
        }
        if (depth === 1) {
          if (afterColon) {
            afterColon = false;
            if (c === LBRACKET && ARRAYS.has(key)) {
              arrayKey = key;
              index = 0;
              onElement(key, undefined, -1);
              depth = 2;
              continue;
            }
          } else if (c === QUOTE) {
            inString = true;
            keyBytes = [];
            continue;
          } else if (c === COLON) {
            afterColon = true;
            continue;
          } else if (c === COMMA || c === RBRACE) {
            if (c === RBRACE) depth = 0;
            continue;
          }
        }
        if (arrayKey !== null && depth === 2 && element === null) {
          if (c === COMMA) continue;
          if (c === RBRACKET) {
            arrayKey = null;
            depth = 1;
            continue;
          }
          element = [];
          elementStart = p;
        }
        if (c === QUOTE) inString = true;
        else if (c === LBRACE || c === LBRACKET) depth++;
        else if (c === RBRACE || c === RBRACKET) depth--;
        if (element !== null && depth === 2 && (c === RBRACE || c === RBRACKET || c === COMMA)) {
          // An element ends with its closing bracket, or (a bare value) before the comma.
          const end = c === COMMA ? p : p + 1;
          element.push(Buffer.from(buf.subarray(elementStart, end)));
          const text = Buffer.concat(element).toString('utf8');
          let value: unknown;
          try {
            value = JSON.parse(text);
          } catch (e) {
            throw new GroundTruthError(`${file}: ${arrayKey}[${index}] is not valid JSON (${(e as Error).message})`);
          }
          onElement(arrayKey!, value, index++);
          element = null;
          if (c === COMMA) continue;
        }
      }
      if (element !== null) {
        element.push(Buffer.from(buf.subarray(elementStart, len)));
        elementStart = 0;
      }
      base += len;
    }
    if (!started || depth !== 0) throw bad('unexpected end of file', base);
  } finally {
    closeSync(fd);
  }
}
