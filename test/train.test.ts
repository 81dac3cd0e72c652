// The trainer in-process on a few images of the committed sample at a small
// S: overfitting, exact resume, the NaN guard, flat tensor counts.
import t from 'tap';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/model/backend/index.js';
import { readCheckpoint } from '../src/model/checkpoint.js';
import { modelConfig } from '../src/model/config.js';
import { createDetector, disposeDetector } from '../src/model/detector.js';
import { NonFiniteLossError, type TrainOptions, lastCheckpoint, train } from '../src/train/trainer.js';
import { tempDirs } from './temp-dirs.js';

const SAMPLE = path.join(import.meta.dirname, '..', 'fixtures', 'sample');
const ROOT = path.join(SAMPLE, 'images', 'labeled');

const tempDir = tempDirs(t);

/** The first n labeled images of the sample as their own COCO file. */
function subset(n: number): string {
  const gt = JSON.parse(readFileSync(path.join(SAMPLE, 'annotations', 'labeled.json'), 'utf8'));
  gt.images = gt.images.slice(0, n);
  const ids = new Set(gt.images.map((im: { id: number }) => im.id));
  gt.annotations = gt.annotations.filter((a: { image_id: number }) => ids.has(a.image_id));
  const file = path.join(tempDir('casl-train-gt-'), 'gt.json');
  writeFileSync(file, JSON.stringify(gt));
  return file;
}

function options(over: Partial<TrainOptions>): TrainOptions {
  return {
    stage: 'labeler', train: subset(4), root: ROOT, out: tempDir('casl-train-'),
    model: 'tiny-fcos', size: 64, batchSize: 2, steps: 8, epochs: 0,
    optimizer: 'sgd', lr: 0.01, momentum: 0.9, weightDecay: 1e-4, schedule: 'step', warmupSteps: 2, warmupFactor: 0.1,
    milestones: [0.75], gamma: 0.1, clipNorm: 10, evalEvery: 0, checkpointEvery: 2, keepCheckpoints: 1, seed: 3,
    aug: 'weak', prefetch: 2, concurrency: 2, resume: false, initParts: [], classifierInit: 'copy', backend: 'wasm',
    ...over,
  };
}

type Metric = { step: number; loss?: number; tensors?: number; lr?: number };
const metrics = (out: string): Metric[] => readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));

function weights(dir: string): Map<string, Float32Array> {
  return new Map([...readCheckpoint(dir).weights].map(([k, v]) => [k, v.data]));
}

function maxDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  let m = 0;
  for (const [k, x] of a) {
    const y = b.get(k)!;
    for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  }
  return m;
}

t.before(async () => {
  await initBackend('wasm', { log: () => {} });
});

t.test('overfit: the loss on four images falls by half within a few dozen steps', async (t) => {
  const o = options({ steps: 25, batchSize: 4, aug: 'none', optimizer: 'adamw', lr: 2e-3, weightDecay: 0, warmupSteps: 0, schedule: 'constant', checkpointEvery: 25 });
  const tensors0 = tf.memory().numTensors;
  const s = await train(o);
  const m = metrics(o.out).filter((x) => x.loss !== undefined);
  const first = m[0].loss!;
  const last = Math.min(...m.slice(-5).map((x) => x.loss!));
  t.ok(last < first / 2, `loss ${first.toFixed(3)} → ${last.toFixed(3)} in ${m.length} steps`);
  t.equal(s.steps, 25);
  t.ok(s.finished && s.modelDir && existsSync(path.join(s.modelDir, 'model.json')), 'final model written');
  const counts = new Set(m.slice(1).map((x) => x.tensors));
  t.equal(counts.size, 1, `tf.memory().numTensors flat over the steps (${[...counts]})`);
  // Kernels may cache a few tensors on first use (once per process); a second run must leave none behind.
  const after1 = tf.memory().numTensors;
  await train({ ...o, out: tempDir('casl-train-'), steps: 2 });
  t.equal(tf.memory().numTensors, after1, `a finished run leaves no tensor behind (first run: ${after1 - tensors0} cached by kernels)`);
});

t.test('resume: stopped at step 5 (last checkpoint at 4), resumed, equals an uninterrupted run', async (t) => {
  const train4 = subset(4);
  const full = options({ train: train4 });
  await train(full);
  const split = options({ train: train4 });
  const first = await train({ ...split, stopAt: 5 });
  t.equal(first.finished, false);
  t.same(lastCheckpoint(split.out)?.step, 4);
  const second = await train({ ...split, resume: true });
  t.equal(second.finished, true);
  t.equal(second.steps, 8);
  const d = maxDiff(weights(path.join(full.out, 'model')), weights(path.join(split.out, 'model')));
  t.ok(d <= 1e-6, `final weights differ by at most ${d}`);
  const lf = metrics(full.out).map((x) => [x.step, x.loss, x.lr]);
  const ls = metrics(split.out).map((x) => [x.step, x.loss, x.lr]);
  t.same(ls, lf, 'the same losses and learning rates at every step, and no duplicate lines for the redone step 5');
  t.same(readdirSync(path.join(split.out, 'checkpoints')).sort(), ['step-0000006', 'step-0000008'], 'older checkpoints pruned (keep 1 besides the last)');
});

t.test('a non-finite loss stops the run naming the step; the last good checkpoint stays', async (t) => {
  const o = options({ lr: 1e8, clipNorm: 0, warmupSteps: 0, momentum: 0, checkpointEvery: 1, steps: 20 });
  let err: unknown;
  try {
    await train(o);
  } catch (e) {
    err = e;
  }
  t.type(err, NonFiniteLossError);
  const m = /^step (\d+): the loss is (NaN|Infinity|-Infinity)/.exec((err as Error).message);
  t.ok(m, (err as Error).message);
  const bad = Number(m![1]);
  const last = lastCheckpoint(o.out)!;
  t.equal(last.step, bad - 1, 'the checkpoint of the step before is the last one');
  const w = weights(last.dir);
  t.ok([...w.values()].every((a) => a.every(Number.isFinite)), 'its weights are finite');
});

t.test('the three stages chain: labeler (K = 1) → warmup on pseudo labels (K = 1) → finetune (K = 6) from warmup', async (t) => {
  const labeler = options({ steps: 2, checkpointEvery: 2 });
  await train(labeler);
  // Pseudo labels as casl filter writes them: the sample's boxes, scored above δ.
  const gt = JSON.parse(readFileSync(path.join(SAMPLE, 'annotations', 'labeled.json'), 'utf8'));
  const pseudo = path.join(tempDir('casl-train-pl-'), 'pseudo.jsonl');
  writeFileSync(pseudo, gt.images.slice(0, 4).map((im: { id: number; file_name: string }) => JSON.stringify({
    image_id: im.id, file_name: im.file_name,
    instances: gt.annotations.filter((a: { image_id: number }) => a.image_id === im.id).map((a: { bbox: number[] }) => ({ bbox: a.bbox, score: 0.8, category_id: 1 })),
    meta: { delta: 0.5, aug: 'none' },
  })).join('\n') + '\n');
  const warmup = options({ stage: 'warmup', train: pseudo, steps: 2, aug: 'strong' });
  const w = await train(warmup);
  t.equal(readCheckpoint(w.modelDir!).manifest.numClasses, 1, 'warmup is class-agnostic');
  await t.rejects(train(options({ stage: 'warmup', steps: 2 })), /never ground truth/, 'and refuses the COCO file the labeler took');

  const finetune = options({ stage: 'finetune', steps: 1, lr: 1e-30, weightDecay: 0, warmupSteps: 0, init: w.modelDir, initParts: ['backbone', 'neck', 'head', 'classifier'], classifierInit: 'copy' });
  const f = await train(finetune);
  const ck = readCheckpoint(f.modelDir!);
  t.equal(ck.manifest.numClasses, 6);
  t.same(ck.manifest.classNames, ['circle', 'ring', 'square', 'diamond', 'triangle', 'star']);
  const src = readCheckpoint(w.modelDir!).weights;
  t.ok(maxDiff(new Map([['backbone.stem.0.weight', src.get('backbone.stem.0.weight')!.data]]), new Map([['backbone.stem.0.weight', ck.weights.get('backbone.stem.0.weight')!.data]])) <= 1e-6, 'backbone from warmup');
  const cls = ck.weights.get('head.cls_logits.weight')!;
  const one = src.get('head.cls_logits.weight')!.data;
  let d = 0;
  for (let i = 0; i < one.length; i++) for (let k = 0; k < 6; k++) d = Math.max(d, Math.abs(cls.data[i * 6 + k] - one[i]));
  t.ok(d <= 1e-6, `every classifier channel is the warmup's one (max diff ${d})`);
});

t.test('lr-scale: a part at 0 is frozen, at 0.5 moves half as far, the rest as without it', async (t) => {
  const det = createDetector(modelConfig('tiny-fcos', { numClasses: 1, inputSize: 64 }), { seed: 3 });
  const init = new Map([...det.params].map(([k, v]) => [k, v.dataSync() as Float32Array]));
  const part = new Map(det.specs.map((s) => [s.name, s.part]));
  disposeDetector(det);
  const plain = weights((await train(options({ steps: 1, checkpointEvery: 1, clipNorm: 0 }))).modelDir!);
  const scaled = weights((await train(options({ steps: 1, checkpointEvery: 1, clipNorm: 0, lrScale: { backbone: 0, neck: 0.5 } }))).modelDir!);
  const worst = { backbone: 0, neck: 0, head: 0, classifier: 0 };
  let moved = 0;
  for (const [k, w0] of init) {
    const a = plain.get(k)!;
    const b = scaled.get(k)!;
    const p = part.get(k)!;
    const f = { backbone: 0, neck: 0.5, head: 1, classifier: 1 }[p];
    for (let i = 0; i < w0.length; i++) {
      const da = a[i] - w0[i];
      moved = Math.max(moved, Math.abs(da));
      worst[p] = Math.max(worst[p], Math.abs(b[i] - w0[i] - f * da));
    }
  }
  t.ok(moved > 1e-4, `one step moves the weights (max ${moved})`);
  t.equal(worst.backbone, 0, 'the backbone is bit-identical to its initialisation');
  for (const p of ['neck', 'head', 'classifier'] as const) t.ok(worst[p] < 1e-6, `${p}: update = factor × the unscaled update (max diff ${worst[p]})`);
});
