// casl experiment --holdout N: the labeled split cut into fit and held-out
// images, which the derived fixtures present as labeled.json and val.json.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, realpathSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { fixturesKey } from '../src/experiment/cache.js';
import { makeHoldoutFixtures, splitHoldout } from '../src/experiment/holdout.js';
import { caslExecutor, fixturePaths } from '../src/experiment/stages.js';
import { tempDirs } from './temp-dirs.js';

const SAMPLE = path.join(import.meta.dirname, '..', 'fixtures', 'sample');
const CASL = path.join(import.meta.dirname, '..', 'bin', 'casl.js');
const tempDir = tempDirs(t);
const casl = (args: string[]) => spawnSync(process.execPath, [CASL, ...args], { encoding: 'utf8' });

t.test('every n-th image by ascending id is held out with its annotations; the rest is the fit split', async (t) => {
  const coco = {
    categories: [{ id: 1, name: 'a' }],
    images: [50, 10, 40, 20, 30, 60, 70].map((id) => ({ id })),
    annotations: [10, 20, 20, 30, 40, 50, 60, 70, 70].map((image_id, i) => ({ id: i + 1, image_id })),
  };
  const { fit, holdout } = splitHoldout(coco, 3);
  t.same(holdout.images.map((im) => im.id).sort((a, b) => a - b), [10, 40, 70], 'positions 0, 3, 6 of the sorted ids');
  t.same(fit.images.map((im) => im.id), [50, 20, 30, 60], 'the rest, in file order');
  t.same(holdout.annotations.map((a) => a.id), [1, 5, 8, 9]);
  t.same(fit.annotations.map((a) => a.id), [2, 3, 4, 6, 7]);
  t.same(fit.categories, coco.categories);
});

t.test('the derived fixtures: fit as labeled.json, held out as val.json over the labeled images, their own cache key', async (t) => {
  const dst = path.join(tempDir('casl-holdout-'), 'fx');
  const n = makeHoldoutFixtures(SAMPLE, dst, 3);
  const src = fixturePaths(SAMPLE);
  const d = fixturePaths(dst);
  const all = JSON.parse(readFileSync(src.labeled, 'utf8'));
  const fit = JSON.parse(readFileSync(d.labeled, 'utf8'));
  const held = JSON.parse(readFileSync(d.val, 'utf8'));
  t.equal(n.fit + n.holdout, all.images.length);
  t.equal(held.images.length, Math.ceil(all.images.length / 3));
  t.equal(fit.annotations.length + held.annotations.length, all.annotations.length, 'every annotation in one half');
  const fitIds = new Set(fit.images.map((im: { id: number }) => im.id));
  t.notOk(held.images.some((im: { id: number }) => fitIds.has(im.id)), 'no image in both');
  t.equal(realpathSync(d.valRoot), realpathSync(src.labeledRoot), 'the held-out images are read from the labeled folder');
  t.equal(realpathSync(d.unlabeledRoot), realpathSync(src.unlabeledRoot));
  t.equal(realpathSync(d.hidden), realpathSync(src.hidden));
  t.same(JSON.parse(readFileSync(path.join(dst, 'fixtures.json'), 'utf8')).holdout, { every: 3, fit: n.fit, holdout: n.holdout });
  const key = fixturesKey(dst, { seed: 1 });
  t.not(key, fixturesKey(SAMPLE, { seed: 1 }), 'stages on the split never share the cache of the real experiment');
  t.same(makeHoldoutFixtures(SAMPLE, dst, 3), n, 'remade in place');
  t.equal(fixturesKey(dst, { seed: 1 }), key, 'with the same key, so its stages stay cached');
  t.throws(() => makeHoldoutFixtures(SAMPLE, dst, 1), /n ≥ 2/);
  t.throws(() => makeHoldoutFixtures(path.join(dst, 'nowhere'), path.join(dst, 'x'), 3), /fixtures\.json is missing: make the fixtures first/);
});

t.test('casl experiment --holdout plans on the split and says so', async (t) => {
  const out = tempDir('casl-holdout-cli-');
  const plan = (fixtures: string) => casl(['experiment', '--profile', 'smoke', '--fixtures', fixtures, '--out', out, '--holdout', '3', '--dry-run']);
  const r = plan(SAMPLE);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stderr, /--holdout 3: training on \d+ labeled images, scoring on the other \d+ .*val is not read/);
  t.match(r.stderr, /labeler: would run/);
  t.ok(existsSync(path.join(out, 'fixtures-holdout-3', 'annotations', 'val.json')));
  const bad = plan(path.join(out, 'none'));
  t.equal(bad.status, 2);
  t.match(bad.stderr, /fixtures\.json is missing: make the fixtures first/);
});

t.test("eval-agnostic on the split scores the held-out images only (the folder also holds the fit images)", async (t) => {
  const root = tempDir('casl-holdout-eval-');
  const fx = path.join(root, 'fx');
  const n = makeHoldoutFixtures(SAMPLE, fx, 3);
  const model = path.join(root, 'labeler');
  mkdirSync(path.join(model, 'run'), { recursive: true });
  symlinkSync(path.join(import.meta.dirname, '..', 'fixtures', 'labeler'), path.join(model, 'run', 'model'));
  const dir = path.join(root, 'stage');
  mkdirSync(dir);
  await caslExecutor({ id: 'eval-agnostic/x', kind: 'eval-agnostic', config: { delta: 0 }, deps: {} }, dir, { fixtures: fx, model });
  const ev = JSON.parse(readFileSync(path.join(dir, 'eval.json'), 'utf8')).eval;
  t.equal(ev.images, n.holdout, 'every held-out image, nothing else');
  t.ok(ev.AP > 0, `the committed labeler finds objects there (AP^det-a ${ev.AP})`);
});
