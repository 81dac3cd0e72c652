// The pseudo labels as a pycocotools results file (src/label/coco-results.ts):
// one JSON array, one element per kept instance with exactly the keys
// COCO.loadRes reads, masks as they are in the ledger, and errors that name
// the ledger line.
import t from 'tap';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { writeCocoResults } from '../src/label/coco-results.js';
import { decodeMask, encodeMask, rleFromJson, rleToJson } from '../src/geometry/mask.js';
import { tempDirs } from './temp-dirs.js';

const mkdir = tempDirs(t);

t.test('every instance of every ledger line becomes one results element', async (t) => {
  const dir = mkdir('casl-results-');
  const mask = new Uint8Array(6 * 4); // row-major [h 6, w 4]
  mask.fill(1, 6, 10);
  const rle = rleToJson(encodeMask(mask, 6, 4));
  const records = [
    { image_id: 11, file_name: 'a.jpg', width: 4, height: 6, instances: [
      { bbox: [1, 0, 1, 4], score: 0.9, category_id: 1, segmentation: rle },
      { bbox: [0, 0, 2, 2], score: 0.6, category_id: 1, segmentation: rle },
    ], meta: { delta: 0.5 } },
    { image_id: 12, file_name: 'b.jpg', width: 4, height: 6, instances: [{ bbox: [0, 1, 2, 3], score: 0.7, category_id: 3 }] },
  ];
  const jsonl = path.join(dir, 'pseudo.jsonl');
  writeFileSync(jsonl, records.map((r) => JSON.stringify(r)).join('\n') + '\n\n');
  const out = path.join(dir, 'results.json');
  const counts = await writeCocoResults(jsonl, out);
  t.same(counts, { images: 2, detections: 3, masks: 2 });
  const dets = JSON.parse(readFileSync(out, 'utf8')) as Record<string, unknown>[];
  t.ok(Array.isArray(dets), 'one JSON array');
  t.same(dets.map((d) => Object.keys(d)), [
    ['image_id', 'category_id', 'segmentation', 'score', 'bbox'],
    ['image_id', 'category_id', 'segmentation', 'score', 'bbox'],
    ['image_id', 'category_id', 'score', 'bbox'],
  ], 'the keys of a results element, no record fields (file_name, meta, …)');
  t.same(dets.map((d) => [d.image_id, d.category_id, d.score, d.bbox]), [
    [11, 1, 0.9, [1, 0, 1, 4]], [11, 1, 0.6, [0, 0, 2, 2]], [12, 3, 0.7, [0, 1, 2, 3]],
  ]);
  const seg = dets[0].segmentation as { size: number[]; counts: string };
  t.same(seg.size, [6, 4], 'size is [h, w] of the original image');
  t.equal(typeof seg.counts, 'string', 'compressed RLE, as pycocotools writes it');
  t.same(Array.from(decodeMask(rleFromJson({ size: [6, 4], counts: seg.counts }))), Array.from(mask), 'the mask decodes unchanged');
  t.notOk(existsSync(`${out}.tmp`), 'no temporary file left');
});

t.test('an empty ledger is an empty array; a bad line is an error naming file and line, and OUT is left alone', async (t) => {
  const dir = mkdir('casl-results-');
  const empty = path.join(dir, 'empty.jsonl');
  writeFileSync(empty, '');
  const out = path.join(dir, 'results.json');
  t.same(await writeCocoResults(empty, out), { images: 0, detections: 0, masks: 0 });
  t.same(JSON.parse(readFileSync(out, 'utf8')), []);

  const torn = path.join(dir, 'torn.jsonl');
  writeFileSync(torn, JSON.stringify({ image_id: 1, instances: [] }) + '\n{"image_id": 2, "inst');
  await t.rejects(writeCocoResults(torn, out), /torn\.jsonl:2: not JSON/);
  const noCat = path.join(dir, 'nocat.jsonl');
  writeFileSync(noCat, JSON.stringify({ image_id: 1, instances: [{ bbox: [0, 0, 1, 1], score: 0.5 }] }) + '\n');
  await t.rejects(writeCocoResults(noCat, out), /nocat\.jsonl:1: instances\[0\] has no numeric category_id/);
  const notRecord = path.join(dir, 'bad.jsonl');
  writeFileSync(notRecord, JSON.stringify({ image_id: 'x', instances: [] }) + '\n');
  await t.rejects(writeCocoResults(notRecord, out), /bad\.jsonl:1: not a pseudo-label record: missing numeric key 'image_id'/);
  t.same(JSON.parse(readFileSync(out, 'utf8')), [], 'the last complete file is still there');
  t.notOk(existsSync(`${out}.tmp`));
});
