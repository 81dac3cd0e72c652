// Checkpoints: round trip, strict loading that names the tensor that does
// not fit, partial initialisation of a K = 8 model from a K = 1 checkpoint
// (every combination of parts, both classifier options), optimizer state,
// and atomic writes.
import t from 'tap';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { smallConfig, useTestBackend } from './model-helpers.js';
import { modelConfig } from '../src/model/config.js';
import { createDetector, disposeDetector, type Detector } from '../src/model/detector.js';
import { PARTS, type Part } from '../src/model/params.js';
import { Optimizer, SGD_DEFAULTS } from '../src/model/optim.js';
import {
  initFromCheckpoint, loadDetector, loadOptimizerInto, loadWeightsInto, readCheckpoint, saveCheckpoint,
} from '../src/model/checkpoint.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'casl-ckpt-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
t.before(async () => {
  await useTestBackend();
});

const values = (det: Detector, name: string) => det.params.get(name)!.dataSync() as Float32Array;
const equal = (a: ArrayLike<number>, b: ArrayLike<number>) => a.length === b.length && Array.prototype.every.call(a, (v: number, i: number) => v === b[i]);

t.test('round trip: the same weights, the manifest, the hash', async (t) => {
  const det = createDetector(modelConfig('tiny-fcos'), { seed: 3 });
  const dir = path.join(tmp, 'roundtrip');
  const hash = await saveCheckpoint(dir, det, { classNames: ['object'], stage: 'labeler', step: 1200 });
  const json = JSON.parse(readFileSync(path.join(dir, 'model.json'), 'utf8'));
  t.equal(json.weightsManifest[0].weights.length, det.params.size, 'tfjs weightsManifest lists every tensor');
  t.equal(json.weightsManifest[0].paths.length, 2, '6.2 MB of weights in two 4 MiB shards');
  const { det: back, ckpt } = loadDetector(dir);
  t.same(ckpt.manifest.config, det.config, 'config (with the open-ended last size range)');
  t.equal(ckpt.manifest.config.sizeRanges[4][1], Infinity);
  t.match(ckpt.manifest, { numClasses: 1, classNames: ['object'], stage: 'labeler', step: 1200, backend: 'wasm', weightsSha256: hash });
  t.ok([...det.params.keys()].every((n) => equal(values(det, n), values(back, n))), 'every weight equal');
  writeFileSync(path.join(dir, json.weightsManifest[0].paths[1]), Buffer.alloc(16));
  t.throws(() => readCheckpoint(dir), /shards end before tensor|does not match model\.json's/, 'a damaged shard is detected');
  [det, back].forEach(disposeDetector);
});

t.test('a checkpoint of another configuration names the tensor that does not fit', async (t) => {
  const small = createDetector(smallConfig());
  const dir = path.join(tmp, 'small');
  await saveCheckpoint(dir, small, { classNames: ['object'], stage: 'labeler', step: 0 });
  const tiny = createDetector(modelConfig('tiny-fcos'));
  t.throws(() => loadWeightsInto(tiny, readCheckpoint(dir)),
    /tensor 'backbone\.stem\.0\.weight' is \[3,3,3,8\] but model 'tiny-fcos' \(K = 1\) needs \[3,3,3,16\]/);
  t.throws(() => initFromCheckpoint(tiny, readCheckpoint(dir), { take: ['neck'] }), /tensor 'fpn\.lateral\.0\.weight' is \[1,1,16,16\] but .* needs \[1,1,64,64\]/);
  const k8 = createDetector(modelConfig('tiny-fcos', { numClasses: 8 }));
  const dir8 = path.join(tmp, 'k8');
  await saveCheckpoint(dir8, k8, { classNames: 'abcdefgh'.split(''), stage: 'finetune', step: 5 });
  t.throws(() => loadWeightsInto(tiny, readCheckpoint(dir8)), /tensor 'head\.cls_logits\.weight' is \[3,3,64,8\] but model 'tiny-fcos' \(K = 1\) needs \[3,3,64,1\]/);
  const k3 = createDetector(modelConfig('tiny-fcos', { numClasses: 3 }));
  t.throws(() => initFromCheckpoint(k3, readCheckpoint(dir8), { take: ['classifier'] }), /classifier 'head\.cls_logits\.weight' has K = 8, the model K = 3/);
  const before = values(k3, 'backbone.stem.0.weight').slice();
  t.throws(() => initFromCheckpoint(k3, readCheckpoint(dir), { take: ['backbone', 'neck'] }), /backbone\.stem\.0\.weight/);
  t.ok(equal(values(k3, 'backbone.stem.0.weight'), before), 'a failed initialisation changes nothing');
  [small, tiny, k8, k3].forEach(disposeDetector);
});

t.test('K = 8 from a K = 1 checkpoint: any parts, both classifier options', async (t) => {
  const src = createDetector(modelConfig('tiny-fcos'), { seed: 11 });
  const dir = path.join(tmp, 'warmup');
  await saveCheckpoint(dir, src, { classNames: ['object'], stage: 'warmup', step: 900 });
  const ckpt = readCheckpoint(dir);
  const cfg8 = modelConfig('tiny-fcos', { numClasses: 8 });
  const fresh = createDetector(cfg8, { seed: 12 });
  const byPart = new Map<Part, string[]>(PARTS.map((p) => [p, fresh.specs.filter((s) => s.part === p).map((s) => s.name)]));
  // Constant-initialised tensors (GN, biases, scales) are equal in both models; the random ones tell them apart.
  const random = new Set(fresh.specs.filter((s) => s.init.kind !== 'const').map((s) => s.name));
  let combos = 0;
  for (let mask = 0; mask < 16; mask++) {
    const take = PARTS.filter((_, i) => mask & (1 << i));
    for (const classifier of take.includes('classifier') ? (['copy', 'random'] as const) : (['copy'] as const)) {
      const det = createDetector(cfg8, { seed: 12 });
      initFromCheckpoint(det, ckpt, { take, classifier });
      let ok = true;
      for (const part of PARTS) {
        for (const name of byPart.get(part)!) {
          const got = values(det, name);
          const taken = take.includes(part) && !(part === 'classifier' && classifier === 'random');
          if (!taken) ok &&= equal(got, values(fresh, name)) && (part === 'classifier' || !random.has(name) || !equal(got, values(src, name)));
          else if (part !== 'classifier') ok &&= equal(got, values(src, name));
          else {
            const one = values(src, name); // [3, 3, 64, 1] or [1]: every one of the 8 channels is that
            ok &&= got.length === one.length * 8 && got.every((v, i) => v === one[Math.floor(i / 8)]);
          }
        }
      }
      t.ok(ok, `take [${take.join(', ')}]${take.includes('classifier') ? `, classifier ${classifier}` : ''}: taken parts equal the checkpoint, the rest stay fresh`);
      disposeDetector(det);
      combos++;
    }
  }
  t.equal(combos, 24);
  [src, fresh].forEach(disposeDetector);
});

t.test('optimizer state is saved and restored exactly', async (t) => {
  const det = createDetector(smallConfig(), { seed: 1 });
  const opt = new Optimizer(SGD_DEFAULTS);
  const grads = new Map([...det.params].map(([n, v]) => [n, tf.randomNormal(v.shape, 0, 1, 'float32', 5)] as [string, tf.Tensor]));
  opt.apply(det.params, grads, 0.01);
  opt.apply(det.params, grads, 0.01);
  const dir = path.join(tmp, 'with-opt');
  await saveCheckpoint(dir, det, { classNames: ['object'], stage: 'labeler', step: 2, optimizer: opt });
  const ckpt = readCheckpoint(dir);
  const restored = new Optimizer(SGD_DEFAULTS);
  loadOptimizerInto(restored, ckpt);
  t.equal(restored.step, 2);
  const a = opt.getState();
  const b = restored.getState();
  t.same([...b.slots.keys()], [...a.slots.keys()]);
  t.ok([...a.slots].every(([k, v]) => equal(v.dataSync(), b.slots.get(k)!.dataSync())), 'momentum buffers identical');
  t.throws(() => loadOptimizerInto(new Optimizer({ kind: 'adamw', beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }), ckpt), /state is for 'sgd'/);
  tf.dispose([...grads.values(), ...a.slots.values(), ...b.slots.values()]);
  opt.dispose();
  restored.dispose();
  disposeDetector(det);
});

t.test('an interrupted write leaves the previous checkpoint intact', async (t) => {
  const dir = path.join(tmp, 'atomic');
  const a = createDetector(smallConfig(), { seed: 21 });
  const hashA = await saveCheckpoint(dir, a, { classNames: ['object'], stage: 'labeler', step: 100 });
  const b = createDetector(smallConfig(), { seed: 22 });
  // The commit is model.json's rename; make writing its temp file fail, after
  // every new shard is on disk — the latest moment a crash can strike.
  mkdirSync(path.join(dir, `model.json.tmp-${process.pid}`));
  await t.rejects(saveCheckpoint(dir, b, { classNames: ['object'], stage: 'labeler', step: 200 }), /EISDIR|illegal operation on a directory/);
  const ckpt = readCheckpoint(dir);
  t.equal(ckpt.manifest.step, 100, 'model.json is still the previous one');
  t.equal(ckpt.manifest.weightsSha256, hashA, 'and its weights load, hash checked');
  rmSync(path.join(dir, `model.json.tmp-${process.pid}`), { recursive: true });
  // Leftovers of the failed write (its shards) are cleaned by the next save.
  t.ok(readdirSync(dir).filter((f) => f.startsWith('weights-')).length > 1, 'the failed write left unreferenced shards');
  await saveCheckpoint(dir, b, { classNames: ['object'], stage: 'labeler', step: 200 });
  const files = readdirSync(dir).sort();
  t.equal(files.filter((f) => f.startsWith('weights-')).length, 1, 'one shard left after the next save');
  t.equal(readCheckpoint(dir).manifest.step, 200);
  [a, b].forEach(disposeDetector);
});
