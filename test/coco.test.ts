// COCO JSON: a valid file round-trips byte for byte; each kind of bad input
// is refused with the file, the annotation id (or entry) and what to do.
import t from 'tap';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  CocoError, type CocoDataset, cocoImageRecords, indexCoco, loadCoco, saveCoco, validateCoco,
} from '../src/io/coco.js';

const dir = mkdtempSync(path.join(tmpdir(), 'casl-coco-'));

function sample(): CocoDataset {
  return {
    info: { description: 'casl test' },
    images: [
      { id: 1, file_name: 'a.jpg', width: 4, height: 3 },
      { id: 2, file_name: 'sub/b.png', width: 10, height: 8 },
    ],
    annotations: [
      { id: 10, image_id: 1, category_id: 1, bbox: [0, 0, 2, 2], area: 4, iscrowd: 0, segmentation: [[0, 0, 2, 0, 2, 2, 0, 2]] },
      { id: 11, image_id: 1, category_id: 2, bbox: [1, 1, 3, 2], area: 5, iscrowd: 1, segmentation: { size: [3, 4], counts: [4, 2, 1, 2, 1, 2] } },
      { id: 12, image_id: 2, category_id: 1, bbox: [2, 2, 5, 5], area: 25, iscrowd: 0, segmentation: { size: [8, 10], counts: 'a0' } },
      { id: 13, image_id: 2, category_id: 2, bbox: [0, 0, 1.5, 2.25], area: 3.375, iscrowd: 0 },
    ],
    categories: [
      { id: 1, name: 'circle', supercategory: 'shape', isthing: 1 },
      { id: 2, name: 'sky', supercategory: 'stuff', isthing: 0 },
    ],
  };
}

/** The message of the CocoError that validating `data` throws. */
function problemsOf(data: unknown, file = 'gt.json'): string {
  try {
    validateCoco(data, file);
  } catch (e) {
    if (e instanceof CocoError) return e.message;
    throw e;
  }
  return '(validated)';
}

t.test('a valid dataset saves, loads back equal, and saves to the same bytes', async (t) => {
  const file = path.join(dir, 'ok.json');
  saveCoco(file, sample());
  const back = loadCoco(file);
  t.same(back, sample());
  const bytes = readFileSync(file);
  saveCoco(file, back);
  t.ok(readFileSync(file).equals(bytes), 'deterministic bytes');
  t.same(readdirSync(dir).filter((f) => f.includes('.tmp-')), [], 'no temporary file left');
  t.equal(String(bytes).split('\n').length, 1 + 3 * 2 + (2 + 4 + 2) + 1, 'one entry a line: info, each list opened and closed, the entries, the final newline');
  const idx = indexCoco(back);
  t.same(idx.annotationsByImage.get(1)!.map((a) => a.id), [10, 11]);
  t.equal(idx.categoriesById.get(2)!.isthing, 0);
  t.same(cocoImageRecords(back)[1], { image_id: 2, file_name: 'sub/b.png', width: 10, height: 8 });
  // An image-info file (no annotations) is a dataset with none.
  const { annotations: _unused, ...info } = sample();
  t.same(validateCoco(info, 'info.json').annotations, []);
});

t.test('each problem names the file and the annotation id', async (t) => {
  const cases: [string, (d: CocoDataset) => void, RegExp][] = [
    ['unknown image', (d) => { d.annotations[1].image_id = 99; }, /annotation id 11 \(annotations\[1\]\): image_id 99 is not in "images"/],
    ['unknown category', (d) => { d.annotations[2].category_id = 7; }, /annotation id 12 \(annotations\[2\]\): category_id 7 is not in "categories" \(known: 1, 2\)/],
    ['negative width', (d) => { d.annotations[0].bbox = [0, 0, -2, 2]; }, /annotation id 10 .*negative width; COCO boxes are \[x, y, width, height\], not corners/],
    ['negative x', (d) => { d.annotations[0].bbox = [-1, 0, 2, 2]; }, /annotation id 10 .*starts at a negative x/],
    ['NaN in the box', (d) => { d.annotations[3].bbox = [0, 0, NaN, 1]; }, /annotation id 13 .*bbox \[0, 0, NaN, 1\] has a value that is not a finite number/],
    ['short box', (d) => { (d.annotations[3] as { bbox: number[] }).bbox = [0, 0, 1]; }, /annotation id 13 .*expected \[x, y, width, height\]/],
    ['duplicate annotation id', (d) => { d.annotations[3].id = 10; }, /annotation id 10 \(annotations\[3\]\): duplicate annotation id 10 \(also annotations\[0\]\)/],
    ['duplicate image id', (d) => { d.images[1].id = 1; }, /images\[1\] \(id 1\): duplicate image id 1 \(also images\[0\]\)/],
    ['duplicate category id', (d) => { d.categories[1].id = 1; }, /categories\[1\] \(id 1\): duplicate category id 1/],
    ['missing id', (d) => { delete (d.annotations[0] as { id?: number }).id; }, /annotations\[0\] \(no id\): id is undefined; every ground-truth annotation needs a unique integer id/],
    ['bad area', (d) => { d.annotations[0].area = -1; }, /annotation id 10 .*area is -1/],
    ['bad iscrowd', (d) => { (d.annotations[0] as { iscrowd: unknown }).iscrowd = 2; }, /annotation id 10 .*iscrowd is 2; expected 0 or 1/],
    ['odd polygon', (d) => { d.annotations[0].segmentation = [[0, 0, 1, 1, 2]]; }, /annotation id 10 .*segmentation\[0\] has 5 numbers/],
    ['RLE of another size', (d) => { d.annotations[1].segmentation = { size: [4, 3], counts: [12] }; }, /annotation id 11 .*RLE size \[4, 3\] is not the image's \[height, width\] = \[3, 4\]/],
    ['RLE runs do not cover the image', (d) => { d.annotations[1].segmentation = { size: [3, 4], counts: [4, 2] }; }, /annotation id 11 .*run lengths add up to 6, not height × width = 12/],
    ['bad compressed counts', (d) => { d.annotations[2].segmentation = { size: [8, 10], counts: 'a0~' }; }, /annotation id 12 .*not a compressed-RLE character/],
    ['image without size', (d) => { (d.images[0] as { width?: number }).width = undefined; }, /images\[0\] \(id 1\): width is undefined; expected a positive integer/],
    ['image without file_name', (d) => { d.images[0].file_name = ''; }, /images\[0\] \(id 1\): file_name is ""/],
    ['bad isthing', (d) => { (d.categories[0] as { isthing: unknown }).isthing = 'yes'; }, /categories\[0\] \(id 1\): isthing is "yes"/],
  ];
  for (const [what, spoil, want] of cases) {
    const d = sample();
    spoil(d);
    const msg = problemsOf(d, '/data/gt.json');
    t.match(msg, /^\/data\/gt\.json: (a problem|\d problems) in COCO JSON\n/, `${what}: names the file`);
    t.match(msg, want, what);
  }
});

t.test('all problems are reported at once, up to a cap', async (t) => {
  const d = sample();
  for (let i = 0; i < 30; i++) d.annotations.push({ id: 100 + i, image_id: 5, category_id: 1, bbox: [0, 0, 1, 1], area: 1, iscrowd: 0 });
  d.annotations[0].category_id = 9;
  let err: CocoError | undefined;
  try {
    validateCoco(d, 'many.json');
  } catch (e) {
    err = e as CocoError;
  }
  t.ok(err instanceof CocoError);
  t.equal(err!.problems.length, 20);
  t.equal(err!.more, 11);
  t.equal(err!.problems[0].annotationId, 10);
  t.match(err!.message, /^many\.json: 31 problems in COCO JSON\n/);
  t.match(err!.message, /… and 11 more$/);
});

t.test('files: not JSON, not an object, missing keys, missing image files', async (t) => {
  const bad = path.join(dir, 'bad.json');
  writeFileSync(bad, '{"images": [\n  {"id": 1,,}\n]}');
  t.throws(() => loadCoco(bad), { name: 'CocoError', message: /bad\.json: a problem in COCO JSON\n {2}JSON at line 2, column \d+: not valid JSON/ });
  t.throws(() => loadCoco(path.join(dir, 'none.json')), /cannot read COCO JSON .*none\.json/);
  t.match(problemsOf([{ image_id: 1, bbox: [0, 0, 1, 1], score: 0.5 }]), /an array \(a results file\?/);
  t.match(problemsOf({ images: [] }), /"categories" is missing/);
  // Exponents past float range parse to Infinity: a non-finite box from valid JSON.
  const inf = path.join(dir, 'inf.json');
  writeFileSync(inf, JSON.stringify(sample()).replace('"bbox":[0,0,2,2]', '"bbox":[0,0,1e999,2]'));
  t.throws(() => loadCoco(inf), { message: /annotation id 10 \(annotations\[0\]\): bbox \[0, 0, Infinity, 2\] has a value that is not a finite number/ });
  // With a root, every image's file must be there.
  const root = mkdtempSync(path.join(tmpdir(), 'casl-coco-root-'));
  writeFileSync(path.join(root, 'a.jpg'), 'x');
  t.throws(() => validateCoco(sample(), 'gt.json', { root }), { message: new RegExp(`images\\[1\\] \\(id 2\\): image file not found: ${root}/sub/b\\.png`) });
  // saveCoco refuses to write what loadCoco would refuse, and leaves nothing behind.
  const d = sample();
  d.annotations[0].image_id = 42;
  const out = path.join(dir, 'never.json');
  t.throws(() => saveCoco(out, d), /never\.json: a problem in COCO JSON\n {2}annotation id 10/);
  t.notOk(readdirSync(dir).includes('never.json'));
});
