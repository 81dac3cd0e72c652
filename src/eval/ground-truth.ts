// A COCO ground-truth file indexed the way pycocotools' COCO + COCOeval see
// it: images sorted by id (p.imgIds), categories sorted by id (p.catIds),
// each image's annotations kept in file order (imgToAnns), annotations of
// unknown images or categories left out (getAnnIds filters them), and
// `ignore` = iscrowd. In agnostic mode every category is 1 ("object").

import { readFileSync } from 'node:fs';
import type { Segmentation } from '../geometry/mask.js';

export type ImageId = number | string;

/** One place in the input, for error messages. */
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
  annBox: Float64Array;
  annSegm: (Segmentation | undefined)[];
  /** Annotation index → position in the file's `annotations`, for messages. */
  annFileIndex: Int32Array;
  agnostic: boolean;
}

interface CocoJson {
  images?: { id: ImageId; height?: number; width?: number }[];
  annotations?: {
    id?: number;
    image_id: ImageId;
    category_id: number;
    area?: number;
    iscrowd?: number | boolean;
    bbox?: number[];
    segmentation?: Segmentation;
  }[];
  categories?: { id: number; name?: string }[];
}

/** np.unique's order: numbers ascending, or strings by code point. */
export function sortIds(ids: ImageId[]): ImageId[] {
  const uniq = [...new Set(ids)];
  if (uniq.every((x) => typeof x === 'number')) return (uniq as number[]).sort((a, b) => a - b);
  if (uniq.every((x) => typeof x === 'string')) return (uniq as string[]).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  throw new GroundTruthError('image ids mix numbers and strings; use one type');
}

export function readGroundTruth(file: string, opts: { agnostic?: boolean } = {}): GroundTruth {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new GroundTruthError(`cannot read ground truth ${file}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new GroundTruthError(`${file}: not valid JSON (${(e as Error).message}); a COCO ground-truth file is one JSON object`);
  }
  return indexGroundTruth(json, file, opts);
}

export function indexGroundTruth(json: unknown, source: string, opts: { agnostic?: boolean } = {}): GroundTruth {
  const agnostic = opts.agnostic ?? false;
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new GroundTruthError(`${source}: a COCO ground-truth file is an object with "images", "annotations", "categories"`);
  }
  const coco = json as CocoJson;
  for (const key of ['images', 'annotations', 'categories'] as const) {
    if (!Array.isArray(coco[key])) throw new GroundTruthError(`${source}: "${key}" must be an array`);
  }
  const images = coco.images!;
  images.forEach((im, i) => {
    if (typeof im?.id !== 'number' && typeof im?.id !== 'string') throw new GroundTruthError(`${source}: images[${i}] has no "id"`);
  });
  const imageIds = sortIds(images.map((im) => im.id));
  const rankOf = new Map<ImageId, number>(imageIds.map((id, r) => [id, r]));
  const heights = new Int32Array(imageIds.length).fill(-1);
  const widths = new Int32Array(imageIds.length).fill(-1);
  for (const im of images) {
    const r = rankOf.get(im.id)!;
    if (Number.isInteger(im.height) && Number.isInteger(im.width)) {
      heights[r] = im.height!;
      widths[r] = im.width!;
    }
  }

  const cats = coco.categories!.map((c, i) => {
    if (!Number.isInteger(c?.id)) throw new GroundTruthError(`${source}: categories[${i}] has no integer "id"`);
    return { id: c.id, name: typeof c.name === 'string' ? c.name : String(c.id) };
  });
  const categories: Category[] = agnostic
    ? [{ id: 1, name: 'object' }]
    : [...new Map(cats.map((c) => [c.id, c])).values()].sort((a, b) => a.id - b.id);
  const catIndex = new Map(categories.map((c, k) => [c.id, k]));

  // Keep annotations of known images and categories, grouped by image in file order.
  const anns = coco.annotations!;
  const kept: number[] = [];
  const perImage = new Int32Array(imageIds.length + 1);
  anns.forEach((a, i) => {
    if (typeof a !== 'object' || a === null) throw new GroundTruthError(`${source}: annotations[${i}] is not an object`);
    const r = rankOf.get(a.image_id);
    if (r === undefined) return;
    if (!agnostic && !catIndex.has(a.category_id)) return;
    kept.push(i);
    perImage[r + 1]++;
  });
  const annStart = new Int32Array(imageIds.length + 1);
  for (let r = 0; r < imageIds.length; r++) annStart[r + 1] = annStart[r] + perImage[r + 1];
  const fill = annStart.slice(0, imageIds.length);
  const n = kept.length;
  const gt: GroundTruth = {
    source, imageIds, rankOf, heights, widths, categories, catIndex, annStart,
    annOrder: new Int32Array(n),
    annId: new Float64Array(n),
    annCat: new Int32Array(n),
    annArea: new Float64Array(n),
    annCrowd: new Uint8Array(n),
    annBox: new Float64Array(n * 4),
    annSegm: new Array(n),
    annFileIndex: new Int32Array(n),
    agnostic,
  };
  kept.forEach((fileIdx, j) => {
    const a = anns[fileIdx];
    const where = `${source}: annotations[${fileIdx}]${a.id !== undefined ? ` (id ${a.id})` : ''}`;
    if (typeof a.area !== 'number' || !Number.isFinite(a.area)) {
      throw new GroundTruthError(`${where} has no numeric "area"; COCO's area ranges (small/medium/large) are read from it — add it (the mask's pixel count, or w*h for boxes)`);
    }
    if (typeof a.id !== 'number') {
      throw new GroundTruthError(`${where} has no numeric "id"; matches are recorded by annotation id — give every annotation a unique id`);
    }
    const r = rankOf.get(a.image_id)!;
    gt.annOrder[fill[r]++] = j;
    gt.annId[j] = a.id;
    gt.annCat[j] = agnostic ? 0 : catIndex.get(a.category_id)!;
    gt.annArea[j] = a.area;
    gt.annCrowd[j] = a.iscrowd ? 1 : 0;
    if (Array.isArray(a.bbox)) {
      if (a.bbox.length !== 4 || !a.bbox.every((v) => typeof v === 'number' && Number.isFinite(v))) {
        throw new GroundTruthError(`${where}: "bbox" must be [x, y, w, h] of finite numbers, got ${JSON.stringify(a.bbox)}`);
      }
      gt.annBox.set(a.bbox, j * 4);
    } else {
      gt.annBox[j * 4] = NaN;
    }
    gt.annSegm[j] = a.segmentation;
    gt.annFileIndex[j] = fileIdx;
  });
  return gt;
}
