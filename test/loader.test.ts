import t from 'tap';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import _ from 'highland';
import { modelConfig } from '../src/model/config.js';
import { makePoints } from '../src/model/points.js';
import { isErrorRecord } from '../src/records.js';
import { type LoaderOptions, type TrainBatch, epochOrder, trainBatches } from '../src/train/loader.js';
import { type TrainSource, openCocoSource, openPseudoSource } from '../src/train/source.js';
import { tempDirs } from './temp-dirs.js';

const SAMPLE = path.join(import.meta.dirname, '..', 'fixtures', 'sample');
const GT = path.join(SAMPLE, 'annotations', 'labeled.json');
const ROOT = path.join(SAMPLE, 'images', 'labeled');
const S = 64;
const cfg = modelConfig('tiny-fcos', { inputSize: S });

function opts(over: Partial<LoaderOptions> = {}): LoaderOptions {
  return {
    batchSize: 2, size: S, policy: 'strong', seed: 5, classAgnostic: true,
    points: makePoints(cfg, S), centerRadius: cfg.centerRadius, prefetch: 2, concurrency: 2, ...over,
  };
}

function pull<T>(s: Highland.Stream<T>): Promise<T> {
  return new Promise((resolve, reject) => s.pull((err, x) => (err ? reject(err) : _.isNil(x) ? reject(new Error('ended')) : resolve(x as T))));
}

/** The first n batches (and any error records before them), pulled as the trainer pulls them. */
async function take(source: TrainSource, o: LoaderOptions, n: number): Promise<(TrainBatch | { error: string })[]> {
  const out: (TrainBatch | { error: string })[] = [];
  const s = trainBatches(source, o);
  while (out.filter((x) => !isErrorRecord(x)).length < n) out.push(await pull(s) as TrainBatch);
  s.destroy();
  return out;
}

const tempDir = tempDirs(t);

const digest = (b: TrainBatch) => createHash('sha256').update(new Uint8Array(b.images.buffer)).update(b.targets.labels).update(b.targets.boxes).digest('hex');

t.test('a COCO source: every image with a non-crowd annotation, categories in id order', async (t) => {
  const src = openCocoSource(GT, ROOT);
  const gt = JSON.parse(readFileSync(GT, 'utf8'));
  t.equal(src.size + src.empty, gt.images.length);
  t.same(src.categories.map((c) => c.id), gt.categories.map((c: { id: number }) => c.id).sort((a: number, b: number) => a - b));
  const r = await src.read(0);
  t.ok(r.instances.length > 0);
});

t.test('epochs: seeded permutations, a new order each epoch', async (t) => {
  const a = epochOrder(1, 0, 50);
  t.same([...a].sort((x, y) => x - y), Array.from({ length: 50 }, (_, i) => i), 'a permutation');
  t.same(a, epochOrder(1, 0, 50), 'same seed and epoch, same order');
  t.not(Buffer.from(a.buffer).toString('hex'), Buffer.from(epochOrder(1, 1, 50).buffer).toString('hex'), 'next epoch reshuffled');
});

t.test('same seed, same batches; a stream started at nextSample continues the same batches', async (t) => {
  const src = openCocoSource(GT, ROOT);
  const a = (await take(src, opts(), 8)) as TrainBatch[];
  const b = (await take(src, opts(), 8)) as TrainBatch[];
  t.same(a.map(digest), b.map(digest));
  t.same([a[5].epoch, a[6].epoch], [0, 1], `batch 7 of 2 images starts the second epoch of ${src.size}`);
  const resumed = (await take(src, opts({ startSample: a[4].nextSample }), 3)) as TrainBatch[];
  t.same(resumed.map(digest), a.slice(5, 8).map(digest), 'resumed batches equal the uninterrupted ones, across the epoch boundary');
  const other = (await take(src, opts({ seed: 6 }), 2)) as TrainBatch[];
  t.not(digest(other[0]), digest(a[0]), 'another seed, other views');
  t.equal(a[0].images.length, 2 * S * S * 3);
  t.ok(a.every((x) => x.images.every((v) => v >= 0 && v <= 1)), 'inputs in [0, 1]');
});

t.test('views made by the decode addon: the boxes of the sharp path, close pixels, the same bytes every time', async (t) => {
  const src = openCocoSource(GT, ROOT);
  for (const policy of ['weak', 'strong'] as const) {
    const a = (await take(src, opts({ policy, batchSize: 4 }), 3)) as TrainBatch[];
    const b = (await take(src, opts({ policy, batchSize: 4, decodeAddon: false }), 3)) as TrainBatch[];
    const geometry = (x: TrainBatch) => [x.imageIds, Array.from(x.targets.boxes), Array.from(x.targets.labels), x.nextSample];
    t.same(a.map(geometry), b.map(geometry), `${policy}: same images, boxes and labels with and without the addon`);
    for (const [k, x] of a.entries()) {
      let sum = 0;
      for (let i = 0; i < x.images.length; i++) sum += Math.abs(x.images[i] - b[k].images[i]);
      // sharp resizes with lanczos3, the addon with the triangle filter: close, not equal.
      const mean = (255 * sum) / x.images.length;
      t.ok(mean < 4, `${policy} batch ${k}: mean |Δ| ${mean.toFixed(2)} grey levels from the sharp path`);
    }
    const again = (await take(src, opts({ policy, batchSize: 4 }), 3)) as TrainBatch[];
    t.same(again.map(digest), a.map(digest), `${policy}: the same bytes again`);
  }
});

t.test('α: class-agnostic targets are all channel 0; class-specific ones use every category', async (t) => {
  const src = openCocoSource(GT, ROOT);
  const labelsOf = (bs: TrainBatch[]) => new Set(bs.flatMap((b) => [...b.targets.labels].filter((l) => l >= 0)));
  const agnostic = (await take(src, opts({ policy: 'none', batchSize: 4 }), 3)) as TrainBatch[];
  t.same([...labelsOf(agnostic)], [0]);
  const specific = (await take(src, opts({ policy: 'none', batchSize: 4, classAgnostic: false }), 3)) as TrainBatch[];
  const ls = labelsOf(specific);
  t.ok(ls.size >= 3 && [...ls].every((l) => l >= 0 && l < 6), `channels ${[...ls]}`);
  t.equal(agnostic[0].targets.numPos, specific[0].targets.numPos, 'α changes labels, not which locations are positive');
});

t.test('an image that fails to load is an error record; the batches stay full and the stream goes on', async (t) => {
  const dir = tempDir('casl-loader-');
  const gt = JSON.parse(readFileSync(GT, 'utf8'));
  gt.images[0].file_name = 'missing.png';
  const file = path.join(dir, 'gt.json');
  writeFileSync(file, JSON.stringify(gt));
  const src = openCocoSource(file, ROOT);
  const out = await take(src, opts({ batchSize: 3 }), 6);
  const errors = out.filter(isErrorRecord);
  t.ok(errors.length >= 1, 'the missing image is reported');
  t.match(errors[0], { stage: 'loader', file_name: 'missing.png' });
  t.ok(out.filter((x) => !isErrorRecord(x)).every((b) => (b as TrainBatch).B === 3));
});

t.test('pseudo labels: JSONL indexed by byte offset; ground truth and records without δ are refused', async (t) => {
  const dir = tempDir('casl-pseudo-');
  const gt = JSON.parse(readFileSync(GT, 'utf8'));
  const lines = gt.images.map((im: { id: number; file_name: string }, i: number) => {
    const instances = gt.annotations.filter((a: { image_id: number }) => a.image_id === im.id).map((a: { bbox: number[] }) => ({ bbox: a.bbox, score: 0.9, category_id: 1 }));
    const rec = { image_id: im.id, file_name: im.file_name, instances, meta: { delta: 0.5 } };
    if (i === 1) delete (rec as { meta?: unknown }).meta;
    return JSON.stringify(rec);
  });
  lines.splice(3, 0, JSON.stringify(gt));
  const file = path.join(dir, 'pseudo.jsonl');
  writeFileSync(file, lines.join('\n') + '\n');
  const src = await openPseudoSource(file, ROOT);
  t.equal(src.size, gt.images.length - 1, 'all but the record without δ');
  t.equal(src.errors.length, 2);
  t.match(src.errors[0].error, /line 2: no 'meta.delta'/);
  t.match(src.errors[1].error, /line 4: this is COCO ground truth; warmup trains on pseudo labels only/);
  const r = await src.read(2);
  t.equal(r.image_id, gt.images[3].id, 'the third indexed record is image 4 (image 2 was refused)');
  await src.close();
  await t.rejects(openPseudoSource(GT, ROOT), /no pseudo-label records .* never ground truth/s, 'a COCO file is refused whole');
});

t.test('memory is bounded: heap and tensors flat over many batches', async (t) => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const { memory, setBackend } = await import('@tensorflow/tfjs-core');
  await import('@tensorflow/tfjs-backend-cpu');
  await setBackend('cpu');
  const src = openCocoSource(GT, ROOT);
  const s = trainBatches(src, opts({ batchSize: 4, policy: 'strong' }));
  const tensors0 = memory().numTensors;
  let heapAt10 = 0;
  let n = 0;
  while (n < 150) {
    if (isErrorRecord(await pull(s))) continue;
    n++;
    if (n === 10) {
      gc();
      heapAt10 = process.memoryUsage().heapUsed;
    }
  }
  s.destroy();
  gc();
  const growth = process.memoryUsage().heapUsed - heapAt10;
  t.ok(growth < 8 * 2 ** 20, `heap grew ${(growth / 2 ** 20).toFixed(2)} MB over 140 batches (${(140 * 4 * S * S * 3 * 4 / 2 ** 20).toFixed(0)} MB of inputs passed through)`);
  t.equal(memory().numTensors, tensors0, 'the loader makes no tensors');
  t.equal(n, 150);
});
