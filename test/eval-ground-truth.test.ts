// The ground truth read element by element from its file is the one
// indexed from the parsed JSON, whatever the key order and whatever else the
// file holds; bad files say where they are bad.
import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { indexGroundTruth, readGroundTruth, readGroundTruthStreamed, type GroundTruth } from '../src/eval/ground-truth.js';

const dir = mkdtempSync(path.join(tmpdir(), 'casl-gt-'));

const coco = {
  info: { description: 'brackets ] } [ { and "quotes" and \\ in strings', year: 2024, nested: [[1, 2], { a: [] }] },
  licenses: [{ id: 1, name: 'x,y' }],
  annotations: [
    { id: 7, image_id: 20, category_id: 3, area: 12.5, iscrowd: 0, bbox: [1, 2, 3, 4], segmentation: [[1, 2, 3, 4.25, 5, 6], [7, 8, 9, 10, 11, 12]] },
    { id: 8, image_id: 10, category_id: 1, area: 30, iscrowd: 1, bbox: [0, 0, 5, 6], segmentation: { size: [40, 50], counts: [0, 30, 1970] } },
    { id: 9, image_id: 99, category_id: 1, area: 'unused: image 99 is not in images' },
    { id: 10, image_id: 10, category_id: 5, area: 1, bbox: [0, 0, 1, 1] },
    { id: 11, image_id: 20, category_id: 1, area: 2, bbox: [2, 2, 1, 2], segmentation: { size: [40, 50], counts: 'PP2' } },
  ],
  images: [{ id: 20, width: 50, height: 40, file_name: 'b "quoted".jpg' }, { id: 10, width: 50, height: 40 }],
  categories: [{ id: 3, name: 'three' }, { id: 1, name: 'one' }],
};

function plain(gt: GroundTruth) {
  return {
    imageIds: gt.imageIds, heights: [...gt.heights], widths: [...gt.widths], categories: gt.categories,
    annStart: [...gt.annStart], annOrder: [...gt.annOrder], annId: [...gt.annId], annCat: [...gt.annCat], annArea: [...gt.annArea],
    annCrowd: [...gt.annCrowd], annBox: [...gt.annBox], annFileIndex: [...gt.annFileIndex],
    segm: gt.annId.map((_, j) => j).reduce<unknown[]>((out, j) => {
      const s = gt.segmentation(j);
      out.push(Array.isArray(s) ? s.map((p) => [...p]) : s);
      return out;
    }, []),
  };
}

t.test('streamed file = parsed JSON, in any key order and with other keys', async (t) => {
  for (const order of [['info', 'licenses', 'annotations', 'images', 'categories'], ['categories', 'images', 'annotations', 'licenses', 'info']]) {
    const file = path.join(dir, `gt-${order[0]}.json`);
    const obj = Object.fromEntries(order.map((k) => [k, coco[k as keyof typeof coco]]));
    writeFileSync(file, JSON.stringify(obj, null, order[0] === 'info' ? 2 : undefined));
    const fromFile = readGroundTruthStreamed(file);
    const fromJson = indexGroundTruth(obj, file);
    t.same(plain(fromFile), plain(fromJson), `key order ${order.join(', ')}`);
    t.same(plain(readGroundTruth(file)), plain(fromJson), 'a small file is parsed whole, to the same index');
    t.same(fromFile.imageIds, [10, 20], 'images sorted by id');
    t.same(fromFile.categories.map((c) => c.id), [1, 3]);
    // Image 10: annotation 8 (cat 1); annotation 10 has an unknown category. Image 20: 7 then 11, in file order.
    t.same([...fromFile.annOrder].map((j) => fromFile.annId[j]), [8, 7, 11]);
    t.same(fromFile.segmentation(fromFile.annOrder[1]), [Float64Array.of(1, 2, 3, 4.25, 5, 6), Float64Array.of(7, 8, 9, 10, 11, 12)]);
  }
  const agnostic = readGroundTruthStreamed(path.join(dir, 'gt-info.json'), { agnostic: true });
  t.same([...agnostic.annOrder].map((j) => agnostic.annId[j]), [8, 10, 7, 11], 'agnostic keeps every category');
});

t.test('bad files say where', async (t) => {
  const write = (name: string, text: string) => {
    const f = path.join(dir, name);
    writeFileSync(f, text);
    return f;
  };
  t.throws(() => readGroundTruthStreamed(write('list.json', '[1, 2]')), /not a COCO ground-truth JSON object \(no opening \{ at byte 0\)/);
  t.throws(() => readGroundTruthStreamed(write('cut.json', '{"images": [{"id": 1}], "annotations": [{"id": 1')), /unexpected end of file/);
  t.throws(() => readGroundTruthStreamed(write('noanns.json', '{"images": [], "categories": []}')), /"annotations" must be an array/);
  t.throws(() => readGroundTruthStreamed(write('badjson.json', '{"images": [{"id": 1,}], "annotations": [], "categories": []}')), /images\[0\] is not valid JSON/);
  t.throws(() => readGroundTruthStreamed(write('noarea.json', JSON.stringify({
    images: [{ id: 1 }], categories: [{ id: 1 }], annotations: [{ id: 4, image_id: 1, category_id: 1, bbox: [0, 0, 1, 1] }],
  }))), /annotations\[0\] \(id 4\) has no numeric "area"/);
  t.throws(() => readGroundTruth(path.join(dir, 'missing.json')), /cannot read ground truth/);
  t.throws(() => readGroundTruth(path.join(dir, 'badjson.json')), /badjson\.json: not valid JSON/);
  t.throws(() => readGroundTruth(path.join(dir, 'noanns.json')), /"annotations" must be an array/);
  const bom = readGroundTruthStreamed(write('bom.json', '\ufeff' + JSON.stringify({ images: [{ id: 3 }], annotations: [], categories: [] })));
  t.same(bom.imageIds, [3], 'a byte order mark is skipped');
});
