// Training sources: random access to the records of one epoch, so an epoch
// can be re-streamed in any (seeded, shuffled) order without holding the
// records themselves.
//
//   coco    ground truth, a COCO JSON file. JSON has no record boundaries,
//           so the file is parsed whole (io/coco.ts), as pycocotools does.
//   pseudo  pseudo labels, JSONL records from `casl filter` / `casl
//           pseudo-label`. The file is scanned once to index the byte offset
//           and length of every valid line (12 bytes a record: a million
//           records is 12 MB); a record is read back from disk when its
//           turn comes. The index is what gets shuffled.
//
// The stage decides the kind, never the file: warmup opens only `pseudo`,
// and a pseudo source accepts only records carrying casl's pseudo-label
// `meta` with its δ, so ground truth cannot reach warmup by construction.
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { UsageError } from '../cli/command.js';
import { type CocoDataset, indexCoco, loadCoco } from '../io/coco.js';
import type { ErrorRecord } from '../records.js';
import type { Segmentation } from '../geometry/mask.js';

export type SourceKind = 'coco' | 'pseudo';

/** One training image and its instances, boxes as COCO [x, y, w, h] pixels of the original. */
export interface SourceRecord {
  image_id: number;
  file_name: string;
  width?: number;
  height?: number;
  /** `segmentation`: COCO polygons or RLE in original pixels, when the source has masks (CondInst trains on them). */
  instances: { bbox: number[]; category_id: number; segmentation?: Segmentation }[];
}

export interface TrainSource {
  kind: SourceKind;
  file: string;
  /** Image files are `root/file_name`. */
  root: string;
  /** Records in one epoch. */
  size: number;
  /** Category ids in classifier-channel order (channel k is categories[k].id). */
  categories: { id: number; name: string }[];
  /** Inputs refused while opening (bad lines, bad annotations): counted, reported, never trained on. */
  errors: ErrorRecord[];
  /** Images left out because they carry no instance to learn from. */
  empty: number;
  read(i: number): Promise<SourceRecord>;
  close(): Promise<void>;
}

function validBbox(b: unknown): b is number[] {
  return Array.isArray(b) && b.length === 4 && b.every((v) => typeof v === 'number' && Number.isFinite(v)) && b[2] > 0 && b[3] > 0;
}

/**
 * Ground truth from a COCO JSON, read and validated by io/coco.ts (a file
 * with any problem is refused, listing them). Crowd regions are not trained
 * on (as in detectron2); images with no non-crowd annotation are left out
 * and counted in `empty`; a zero-width or zero-height box becomes an error
 * record naming its annotation.
 */
export function openCocoSource(file: string, root = path.dirname(file)): TrainSource {
  let ds: CocoDataset;
  try {
    ds = loadCoco(file);
  } catch (e) {
    throw new UsageError(`ground truth ${(e as Error).message}`);
  }
  const categories = [...ds.categories].sort((a, b) => a.id - b.id).map((c) => ({ id: c.id, name: c.name }));
  const errors: ErrorRecord[] = [];
  const byImage = indexCoco(ds).annotationsByImage;
  const records: SourceRecord[] = [];
  let empty = 0;
  for (const im of ds.images) {
    const instances: SourceRecord['instances'] = [];
    for (const a of byImage.get(im.id) ?? []) {
      if (a.iscrowd) continue;
      if (validBbox(a.bbox)) instances.push(a.segmentation ? { bbox: a.bbox, category_id: a.category_id, segmentation: a.segmentation as Segmentation } : { bbox: a.bbox, category_id: a.category_id });
      else errors.push({ error: `annotation id ${a.id}: bbox ${JSON.stringify(a.bbox)} has no area; not trained on`, stage: 'source', file_name: file, image_id: im.id });
    }
    if (instances.length === 0) empty++;
    else records.push({ image_id: im.id, file_name: im.file_name, width: im.width, height: im.height, instances });
  }
  return {
    kind: 'coco', file, root, size: records.length, categories, errors, empty,
    read: async (i) => records[i],
    close: async () => {},
  };
}

/** Why a JSONL line is not a pseudo label, or null if it is one. */
function notPseudoLabel(v: unknown): string | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'not a JSON object';
  const r = v as Record<string, unknown>;
  if ('annotations' in r || 'images' in r) return 'this is COCO ground truth; warmup trains on pseudo labels only (the output of casl filter / casl pseudo-label)';
  if (typeof r.image_id !== 'number' || typeof r.file_name !== 'string') return "missing 'image_id' (number) or 'file_name' (string)";
  if (!Array.isArray(r.instances)) return "missing 'instances'";
  const meta = r.meta as Record<string, unknown> | undefined;
  if (typeof meta !== 'object' || meta === null || typeof meta.delta !== 'number') {
    return "no 'meta.delta': not a pseudo label from casl filter (only records that went through the δ filter are accepted)";
  }
  for (const inst of r.instances as unknown[]) {
    const x = inst as Record<string, unknown>;
    if (typeof x !== 'object' || x === null || !validBbox(x.bbox) || typeof x.score !== 'number') return 'an instance without a valid bbox [x, y, w, h] and score';
    if (x.score <= meta.delta) return `an instance scores ${x.score}, not above the record's δ ${meta.delta}`;
  }
  if ((r.instances as unknown[]).length === 0) return 'no instances (the δ filter drops such images)';
  return null;
}

/** Grows by doubling; a million offsets cost 8 MB. */
class OffsetIndex {
  offsets = new Float64Array(1024);
  lengths = new Uint32Array(1024);
  size = 0;

  push(offset: number, length: number): void {
    if (this.size === this.offsets.length) {
      const o = new Float64Array(this.size * 2);
      o.set(this.offsets);
      this.offsets = o;
      const l = new Uint32Array(this.size * 2);
      l.set(this.lengths);
      this.lengths = l;
    }
    this.offsets[this.size] = offset;
    this.lengths[this.size] = length;
    this.size++;
  }
}

/**
 * Pseudo labels from a JSONL file, indexed by byte offset in one streaming
 * pass (memory: the index, not the records). Every line that is not a
 * pseudo label becomes an error record naming its line; a file with no
 * pseudo label at all is refused.
 */
export async function openPseudoSource(file: string, root: string): Promise<TrainSource> {
  const index = new OffsetIndex();
  const errors: ErrorRecord[] = [];
  let lineNo = 0;
  let offset = 0;
  let carry: Buffer[] = [];
  let carryLen = 0;
  const onLine = (buf: Buffer, start: number) => {
    lineNo++;
    const text = buf.toString('utf8').replace(/\r$/, '');
    if (text.trim() === '') return;
    let why: string | null;
    try {
      why = notPseudoLabel(JSON.parse(text));
    } catch (e) {
      why = `not valid JSON (${(e as Error).message})`;
    }
    if (why) errors.push({ error: `line ${lineNo}: ${why}`, stage: 'source', file_name: file, line: lineNo });
    else index.push(start, buf.length);
  };
  try {
    for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
      let s = 0;
      for (let nl = chunk.indexOf(10, s); nl >= 0; nl = chunk.indexOf(10, s)) {
        const piece = chunk.subarray(s, nl);
        const line = carryLen ? Buffer.concat([...carry, piece]) : piece;
        onLine(line, offset - carryLen);
        offset += piece.length + 1;
        carry = [];
        carryLen = 0;
        s = nl + 1;
      }
      if (s < chunk.length) {
        carry.push(chunk.subarray(s));
        carryLen += chunk.length - s;
        offset += chunk.length - s;
      }
    }
  } catch (e) {
    throw new UsageError(`cannot read pseudo labels ${file}: ${(e as Error).message}`);
  }
  if (carryLen > 0 && Buffer.concat(carry).toString('utf8').trim() !== '') {
    errors.push({ error: `line ${lineNo + 1}: no final newline, the file was cut off mid-write; not used`, stage: 'source', file_name: file, line: lineNo + 1 });
  }
  if (index.size === 0) {
    const first = errors[0]?.error ?? 'the file is empty';
    throw new UsageError(`${file}: no pseudo-label records (${errors.length} lines refused; first: ${first}). This stage takes the JSONL of casl filter, never ground truth.`);
  }
  const fh = await open(file, 'r');
  return {
    kind: 'pseudo', file, root, size: index.size,
    categories: [{ id: 1, name: 'object' }],
    errors, empty: 0,
    async read(i) {
      const len = index.lengths[i];
      const buf = Buffer.alloc(len);
      await fh.read(buf, 0, len, index.offsets[i]);
      const r = JSON.parse(buf.toString('utf8')) as SourceRecord;
      return { image_id: r.image_id, file_name: r.file_name, width: r.width, height: r.height, instances: r.instances.map((x) => (x.segmentation ? { bbox: x.bbox, category_id: x.category_id, segmentation: x.segmentation } : { bbox: x.bbox, category_id: x.category_id })) };
    },
    close: () => fh.close(),
  };
}
