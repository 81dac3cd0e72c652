import t, { type Test } from 'tap';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { generateFixtures, imageSeed, type FixturesOptions, type Split } from '../src/fixtures/generate.js';
import { type ClassMix, classShares, DEFAULT_MIX, makeScene, sceneTint } from '../src/fixtures/scene.js';
import { outlineArea, THING_CLASSES, unitOutline } from '../src/fixtures/shapes.js';
import { Rng } from '../src/fixtures/prng.js';
import { decodeMask, rleArea, rleToBbox, segmentationToRle } from '../src/geometry/mask.js';
import { command } from '../src/cli/commands/fixtures.js';
import { parseArgs, PROJECT_ROOT } from '../src/cli/options.js';
import { UsageError } from '../src/cli/command.js';
import { loadCoco } from '../src/io/coco.js';
import { imageIdFor } from '../src/io/ingest.js';

const SAMPLE = path.join(PROJECT_ROOT, 'fixtures', 'sample');

const made: string[] = [];
t.teardown(() => made.forEach((d) => rmSync(d, { recursive: true, force: true })));

function tmp(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'casl-fixtures-'));
  made.push(dir);
  return dir;
}

async function make(over: Partial<FixturesOptions> = {}): Promise<string> {
  const out = over.out ?? tmp();
  await generateFixtures({
    out, seed: 1, labeled: 4, unlabeled: 4, val: 4, entities: true, jpegQuality: 90, concurrency: 2, ...over,
  });
  return out;
}

/** Every file under dir, relative, with its bytes. */
function tree(dir: string): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  const walk = (d: string) => {
    for (const e of readdirSync(d).sort()) {
      const p = path.join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else files.set(path.relative(dir, p), readFileSync(p));
    }
  };
  walk(dir);
  return files;
}

function sameTree(t: Test, a: string, b: string): void {
  const ta = tree(a), tb = tree(b);
  t.same([...ta.keys()], [...tb.keys()], 'same files');
  const differ = [...ta.keys()].filter((k) => !tb.get(k)?.equals(ta.get(k)!));
  t.same(differ, [], 'same bytes');
}

interface Coco {
  info: object;
  licenses: unknown[];
  images: { id: number; file_name: string; width: number; height: number }[];
  annotations: {
    id: number; image_id: number; category_id: number; bbox: number[]; area: number; iscrowd: number;
    segmentation: number[][] | { size: [number, number]; counts: string | number[] };
  }[];
  categories: { id: number; name: string; isthing: number }[];
}

function readCoco(file: string): Coco {
  return JSON.parse(readFileSync(file, 'utf8')) as Coco;
}

/**
 * A ground-truth file passes the COCO loader's validation (ids, images on
 * disk, categories, boxes), and its area and bbox are those of its mask,
 * as pycocotools would compute them.
 */
function checkCoco(t: Test, file: string, imagesDir: string): void {
  let coco: Coco;
  try {
    coco = loadCoco(file, { root: imagesDir }) as unknown as Coco;
  } catch (e) {
    t.fail((e as Error).message);
    return;
  }
  t.ok(coco.info && Array.isArray(coco.licenses), `${path.basename(file)}: info and licenses present (pycocotools' loadRes copies info)`);
  const images = new Map(coco.images.map((im) => [im.id, im]));
  const problems: string[] = [];
  for (const a of coco.annotations) {
    const im = images.get(a.image_id)!;
    const [x, y, w, h] = a.bbox;
    if (!(w > 0 && h > 0 && x >= 0 && y >= 0 && x + w <= im.width && y + h <= im.height)) problems.push(`annotation ${a.id}: bbox ${a.bbox} outside ${im.width}x${im.height}`);
    const rle = segmentationToRle(a.segmentation, im.height, im.width);
    if (rleArea(rle) !== a.area) problems.push(`annotation ${a.id}: area ${a.area} but mask has ${rleArea(rle)}`);
    if (rleToBbox(rle).join() !== a.bbox.join()) problems.push(`annotation ${a.id}: bbox ${a.bbox} but mask box ${rleToBbox(rle)}`);
    if (a.iscrowd === 1 && (Array.isArray(a.segmentation) || typeof a.segmentation.counts === 'string')) {
      problems.push(`annotation ${a.id}: crowd without uncompressed RLE`);
    }
  }
  t.same(problems, [], `${path.basename(file)}: ${coco.annotations.length} annotations consistent`);
}

t.test('same seed, same bytes; another seed, other bytes', async (t) => {
  const a = await make(), b = await make();
  sameTree(t, a, b);
  const c = await make({ seed: 2 });
  const ta = tree(a), tc = tree(c);
  const same = [...ta.keys()].filter((k) => k.startsWith('images/') && tc.get(k)?.equals(ta.get(k)!));
  t.same(same, [], 'no image is the same under another seed');
  t.not(ta.get('annotations/labeled.json')!.toString(), tc.get('annotations/labeled.json')!.toString());
});

t.test('a smaller split is a prefix of a larger one', async (t) => {
  const small = tree(await make({ labeled: 2, unlabeled: 1, val: 0 }));
  const large = tree(await make());
  for (const [k, v] of small) if (k.startsWith('images/')) t.ok(large.get(k)?.equals(v), `${k} unchanged`);
});

t.test('COCO files: ids, categories, boxes, areas and masks agree', async (t) => {
  const dir = await make({ labeled: 6, unlabeled: 6, val: 6 });
  checkCoco(t, path.join(dir, 'annotations', 'labeled.json'), path.join(dir, 'images', 'labeled'));
  checkCoco(t, path.join(dir, 'annotations', 'val.json'), path.join(dir, 'images', 'val'));
  checkCoco(t, path.join(dir, 'annotations', 'unlabeled_hidden_gt.json'), path.join(dir, 'images', 'unlabeled'));
  for (const split of ['labeled', 'val', 'unlabeled']) {
    const file = path.join(dir, 'annotations', split === 'unlabeled' ? 'unlabeled_hidden_gt_entities.json' : `${split}_entities.json`);
    checkCoco(t, file, path.join(dir, 'images', split));
    const coco = readCoco(file);
    t.same(coco.categories.filter((c) => !c.isthing).map((c) => c.name), ['sky', 'ground', 'water']);
    const stuffIds = new Set(coco.categories.filter((c) => !c.isthing).map((c) => c.id));
    t.ok(coco.annotations.some((a) => stuffIds.has(a.category_id)), `${split}: entities include stuff`);
    // Entities tile the picture: no pixel belongs to two of them.
    for (const im of coco.images) {
      const cover = new Uint8Array(im.width * im.height);
      for (const a of coco.annotations.filter((x) => x.image_id === im.id)) {
        const m = decodeMask(segmentationToRle(a.segmentation, im.height, im.width));
        for (let i = 0; i < m.length; i++) cover[i] += m[i];
      }
      t.ok(cover.every((c) => c <= 1), `${split} image ${im.id}: entity masks do not overlap`);
    }
  }
  const val = readCoco(path.join(dir, 'annotations', 'val.json'));
  t.ok(val.images.every((im) => im.id === imageIdFor(im.file_name)), 'image ids are those casl ingest gives the files');
  const noEntities = await make({ entities: false, labeled: 1, unlabeled: 1, val: 1 });
  t.same(readdirSync(path.join(noEntities, 'annotations')).sort(), ['labeled.json', 'unlabeled_hidden_gt.json', 'val.json']);
});

async function masksShowTheirThings(t: Test, mix: ClassMix): Promise<void> {
  const dir = await make({ labeled: 10, unlabeled: 0, val: 0, mix });
  const coco = readCoco(path.join(dir, 'annotations', 'labeled.json'));
  let pngs = 0;
  for (const [index, im] of coco.images.entries()) {
    const decoded = await sharp(path.join(dir, 'images', 'labeled', im.file_name)).raw().toBuffer({ resolveWithObject: true });
    t.equal(decoded.info.channels, 3);
    const rgb = decoded.data;
    const lossless = im.file_name.endsWith('.png');
    if (lossless) pngs++;
    // The scene again, to know what each thing's surface looks like at each pixel.
    const scene = makeScene(imageSeed(1, 'labeled' as Split, index), mix);
    const tint = sceneTint(scene);
    const things = scene.things;
    const anns = coco.annotations.filter((a) => a.image_id === im.id);
    t.equal(anns.length, things.length, `image ${im.id}: one annotation a thing`);
    const px = new Uint8ClampedArray(3);
    anns.forEach((a, k) => {
      const mask = decodeMask(segmentationToRle(a.segmentation, im.height, im.width));
      const layers = things[k].layers;
      let inside = 0, match = 0, border = 0, borderMatch = 0;
      const agrees = (p: number, layer: number) => {
        scene.layers[layer].paint(p % im.width, Math.floor(p / im.width), px, 0);
        const d = Math.max(...[0, 1, 2].map((c) => Math.abs(Math.min(255, Math.round(px[c] * tint[c])) - rgb[3 * p + c])));
        return d <= (lossless ? 1 : 48);
      };
      for (let p = 0; p < mask.length; p++) {
        if (mask[p]) {
          inside++;
          if (layers.some((l) => agrees(p, l))) match++;
        } else if ((p % im.width > 0 && mask[p - 1]) || (p % im.width < im.width - 1 && mask[p + 1])) {
          border++;
          if (layers.some((l) => agrees(p, l))) borderMatch++;
        }
      }
      const need = lossless ? 1 : 0.75;
      t.ok(match / inside >= need, `image ${im.id} annotation ${a.id}: ${match}/${inside} pixels in the mask show its thing`);
      // Just outside the mask the thing's surface is (mostly) not what is shown.
      if (lossless && border > 0) t.ok(borderMatch / border < 0.5, `image ${im.id} annotation ${a.id}: ${borderMatch}/${border} border pixels look like it`);
    });
  }
  t.ok(pngs > 0, 'some images are PNG, checked exactly');
}

t.test('masks cover the pixels painted for their thing', (t) => masksShowTheirThings(t, DEFAULT_MIX));
t.test('masks cover the pixels painted for their thing: the twenty classes', (t) => masksShowTheirThings(t, { count: 20, tail: 0 }));

t.test('more classes, long-tailed: --classes and --class-tail', async (t) => {
  const rng = new Rng(7);
  for (const cls of THING_CLASSES) {
    const pts = unitOutline(cls, rng, 20);
    const inside = pts.every(([x, y]) => Math.abs(x) <= 1.1 && Math.abs(y) <= 1.1);
    t.ok(inside && outlineArea(pts) > 0.4, `${cls}: an outline of area ${outlineArea(pts).toFixed(2)} about the unit circle (within ±1.1)`);
  }
  t.same(classShares(DEFAULT_MIX).map((x) => x.toFixed(4)), Array(6).fill((1 / 6).toFixed(4)), 'the default is six, uniform');
  const zipf = classShares({ count: 20, tail: 1 });
  t.ok(Math.abs(zipf.reduce((a, b) => a + b, 0) - 1) < 1e-12 && Math.abs(zipf[0] / zipf[19] - 20) < 1e-9, 'tail 1: the first class 20 times the last');
  const dir = await make({ labeled: 60, unlabeled: 0, val: 0, mix: { count: 20, tail: 1 } });
  const file = path.join(dir, 'annotations', 'labeled.json');
  checkCoco(t, file, path.join(dir, 'images', 'labeled'));
  checkCoco(t, path.join(dir, 'annotations', 'labeled_entities.json'), path.join(dir, 'images', 'labeled'));
  const coco = readCoco(file);
  t.same(coco.categories.map((c) => c.id), Array.from({ length: 20 }, (_, i) => i + 1), 'twenty thing categories');
  const entities = readCoco(path.join(dir, 'annotations', 'labeled_entities.json'));
  t.same(entities.categories.filter((c) => !c.isthing).map((c) => [c.id, c.name]), [[21, 'sky'], [22, 'ground'], [23, 'water']], 'stuff numbered after them');
  const per = Array(21).fill(0);
  for (const a of coco.annotations) per[a.category_id]++;
  const head = per[1] + per[2] + per[3], tail = per.slice(11).reduce((a, b) => a + b, 0);
  // Expected shares: classes 1-3 0.51, classes 11-20 0.17 of all things.
  t.ok(head > 2 * tail, `the three commonest classes ${head} things, the last ten ${tail}`);
  t.ok(new Set(coco.annotations.map((a) => a.category_id)).size >= 15, 'most classes appear in 60 images');
  const manifest = JSON.parse(readFileSync(path.join(dir, 'fixtures.json'), 'utf8'));
  t.same([manifest.classes, manifest.class_tail], [20, 1], 'the manifest says which classes');
  t.equal(JSON.parse(readFileSync(path.join(SAMPLE, 'fixtures.json'), 'utf8')).classes, undefined, 'and the default one does not');
});

t.test('--unlabeled-classes: unlabeled images with classes the labeled split never names', async (t) => {
  const dir = await make({ labeled: 6, unlabeled: 30, val: 6, mix: { count: 6, tail: 0, unlabeled: 12 } });
  const plain = await make({ labeled: 6, unlabeled: 0, val: 6 });
  for (const f of ['labeled.json', 'val.json']) {
    t.equal(readFileSync(path.join(dir, 'annotations', f), 'utf8'), readFileSync(path.join(plain, 'annotations', f), 'utf8'), `${f}: the six-class split, unchanged`);
  }
  const hidden = readCoco(path.join(dir, 'annotations', 'unlabeled_hidden_gt.json'));
  checkCoco(t, path.join(dir, 'annotations', 'unlabeled_hidden_gt.json'), path.join(dir, 'images', 'unlabeled'));
  t.same(hidden.categories.map((c) => c.id), Array.from({ length: 12 }, (_, i) => i + 1), 'its hidden truth names twelve');
  t.ok(hidden.annotations.some((a) => a.category_id > 6), 'and holds objects of the other six');
  // One numbering for all splits: stuff after the twelve, in every entities file.
  for (const f of ['labeled_entities.json', 'unlabeled_hidden_gt_entities.json']) {
    const stuff = readCoco(path.join(dir, 'annotations', f)).categories.filter((c) => !c.isthing).map((c) => c.id);
    t.same(stuff, [13, 14, 15], `${f}: stuff ids 13-15`);
  }
  t.equal(JSON.parse(readFileSync(path.join(dir, 'fixtures.json'), 'utf8')).unlabeled_classes, 12, 'the manifest says so');
});

t.test('--skip-classes: scenes of the other shapes only (a pretraining set)', async (t) => {
  const dir = await make({ labeled: 30, unlabeled: 6, val: 6, mix: { count: 20, tail: 0, skip: 6 } });
  for (const split of ['labeled', 'unlabeled_hidden_gt', 'val']) {
    const f = path.join(dir, 'annotations', `${split}.json`);
    checkCoco(t, f, path.join(dir, 'images', split === 'unlabeled_hidden_gt' ? 'unlabeled' : split));
    const coco = readCoco(f);
    t.same(coco.categories.map((c) => c.id), Array.from({ length: 14 }, (_, i) => i + 7), `${split}: categories 7-20`);
    t.ok(coco.annotations.every((a) => a.category_id >= 7 && a.category_id <= 20), `${split}: none of the first six`);
  }
  const labeled = readCoco(path.join(dir, 'annotations', 'labeled.json'));
  t.ok(new Set(labeled.annotations.map((a) => a.category_id)).size >= 12, 'most of the fourteen appear in 30 images');
  const manifest = JSON.parse(readFileSync(path.join(dir, 'fixtures.json'), 'utf8'));
  t.equal(manifest.skip_classes, 6, 'the manifest says so');
  t.same(Object.keys(manifest.splits.labeled.per_class), labeled.categories.map((c) => c.name), 'counted per drawn class');
  const stuff = readCoco(path.join(dir, 'annotations', 'labeled_entities.json')).categories.filter((c) => !c.isthing).map((c) => c.id);
  t.same(stuff, [21, 22, 23], 'stuff after the twenty');
});

t.test('sizes, counts and variety', async (t) => {
  const dir = await make({ labeled: 60, unlabeled: 0, val: 0 });
  const coco = readCoco(path.join(dir, 'annotations', 'labeled.json'));
  const plain = coco.annotations.filter((a) => !a.iscrowd);
  const small = plain.filter((a) => a.area < 32 * 32).length;
  const large = plain.filter((a) => a.area >= 96 * 96).length;
  const medium = plain.length - small - large;
  for (const [name, n] of [['small', small], ['medium', medium], ['large', large]] as const) {
    t.ok(n >= 0.08 * plain.length, `${name}: ${n} of ${plain.length} annotations`);
  }
  const perImage = coco.images.map((im) => plain.filter((a) => a.image_id === im.id).length);
  t.ok(perImage.every((n) => n >= 1 && n <= 8), `1-8 things an image (${Math.min(...perImage)}-${Math.max(...perImage)})`);
  t.ok(coco.images.every((im) => im.width >= 160 && im.width <= 320 && im.height >= 160 && im.height <= 320), 'sizes 160-320');
  t.ok(coco.images.some((im) => im.width > im.height) && coco.images.some((im) => im.width < im.height), 'landscape and portrait');
  t.ok(coco.images.some((im) => im.file_name.endsWith('.png')) && coco.images.some((im) => im.file_name.endsWith('.jpg')), 'JPEG and PNG');
  t.same(new Set(plain.map((a) => a.category_id)).size, 6, 'all six classes');
  t.ok(coco.annotations.some((a) => a.iscrowd === 1), 'some crowds');
  t.ok(plain.some((a) => Array.isArray(a.segmentation)) && plain.some((a) => !Array.isArray(a.segmentation)), 'polygons and RLE (occluded)');
  // The smallest thing still has a 10-pixel side once letterboxed to 128.
  const tiny = plain.filter((a) => {
    const im = coco.images.find((i) => i.id === a.image_id)!;
    return Math.max(a.bbox[2], a.bbox[3]) * (128 / Math.max(im.width, im.height)) < 5;
  });
  t.ok(tiny.length <= 0.02 * plain.length, `${tiny.length} things under 5 px at 128 (heavily occluded ones only)`);
});

t.test('the committed sample is what the generator makes now', async (t) => {
  const manifest = JSON.parse(readFileSync(path.join(SAMPLE, 'fixtures.json'), 'utf8'));
  const out = await make({
    seed: manifest.seed, labeled: manifest.labeled, unlabeled: manifest.unlabeled, val: manifest.val,
    entities: manifest.entities, jpegQuality: manifest.jpeg_quality,
  });
  t.comment('if this fails after a generator change, regenerate: make fixtures-sample');
  const committed = tree(SAMPLE), now = tree(out);
  t.same([...now.keys()], [...committed.keys()], 'same files');
  for (const [file, bytes] of committed) {
    const mine = now.get(file);
    if (!mine || mine.equals(bytes)) continue;
    if (!file.startsWith('images/')) {
      t.fail(`${file} differs`);
      continue;
    }
    // Another build of libvips (another platform) may encode the same
    // pixels to other bytes: then the pixels must still agree, exactly for
    // PNG, within JPEG's rounding otherwise.
    const [a, b] = await Promise.all([bytes, mine].map((x) => sharp(x).raw().toBuffer()));
    let worst = a.length === b.length ? 0 : Infinity;
    for (let i = 0; i < a.length && worst < Infinity; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
    t.ok(worst <= (file.endsWith('.png') ? 0 : 3), `${file}: other bytes, pixels within ${worst}`);
  }
});

t.test('command line: --out required, a foreign directory refused, an old tree replaced', async (t) => {
  const ctx = { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin };
  const run = (argv: string[]) => {
    const { opts, positionals } = parseArgs(command, argv);
    return command.run(opts, positionals, ctx);
  };
  await t.rejects(run(['--labeled', '1']), UsageError);
  const foreign = tmp();
  writeFileSync(path.join(foreign, 'thesis.tex'), 'precious');
  await t.rejects(run(['--out', foreign, '--labeled', '1', '--unlabeled', '0', '--val', '0', '--quiet']), /holds thesis\.tex, which casl fixtures did not write/);
  t.equal(readFileSync(path.join(foreign, 'thesis.tex'), 'utf8'), 'precious', 'left alone');
  await t.rejects(run(['--out', tmp(), '--seed', '4294967296', '--quiet']), /--seed must be an integer from 0 to 4294967295/);
  await t.rejects(run(['--out', tmp(), '--labeled', '-1', '--quiet']), /--labeled must be a whole number/);
  await t.rejects(run(['--out', tmp(), '--classes', '21', '--quiet']), /--classes \/ --class-tail \/ --unlabeled-classes \/ --skip-classes: the class count must be 1-20, got 21/);
  await t.rejects(run(['--out', tmp(), '--class-tail', '-0.5', '--quiet']), /the class tail must be 0-4, got -0.5/);
  await t.rejects(run(['--out', tmp(), '--unlabeled-classes', '0', '--quiet']), /the unlabeled split's class count must be 1-20, got 0/);
  await t.rejects(run(['--out', tmp(), '--skip-classes', '6', '--quiet']), /--skip-classes: the skipped class count must be 0 to one less than the class count \(6\), got 6/);
  const dir = tmp();
  t.equal(await run(['--out', dir, '--labeled', '3', '--unlabeled', '0', '--val', '0', '--quiet']), 0);
  // As if interrupted: no manifest yet, but still recognisably ours.
  rmSync(path.join(dir, 'fixtures.json'));
  t.equal(await run(['--out', dir, '--labeled', '1', '--unlabeled', '0', '--val', '0', '--quiet']), 0);
  t.same(readdirSync(path.join(dir, 'images', 'labeled')).length, 1, 'images of the older, larger run are gone');
});
