// CondInst in training: entity pipelines validate, the loader turns COCO
// masks into view masks that follow the augmentation, tiny-condinst trains
// with the dice term on the sample's entities, and a finetune starts from
// that entity model exactly as from a box one.
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { command as trainCommand } from '../src/cli/commands/train.js';
import { command as pseudoLabelCommand } from '../src/cli/commands/pseudo-label.js';
import { loadConfig, pipelineFile } from '../src/cli/options.js';
import { decodeImage } from '../src/io/decode.js';
import { initBackend } from '../src/model/backend/index.js';
import { TINY_CONDINST_MASK } from '../src/model/condinst/mask-config.js';
import { makeSample } from '../src/train/loader.js';
import { openCocoSource } from '../src/train/source.js';
import { type TrainOptions, train } from '../src/train/trainer.js';
import { tempDirs } from './temp-dirs.js';

const SAMPLE = path.join(import.meta.dirname, '..', 'fixtures', 'sample');
const ROOT = path.join(SAMPLE, 'images', 'labeled');
const tempDir = tempDirs(t);

function subset(file: string, n: number): string {
  const gt = JSON.parse(readFileSync(path.join(SAMPLE, 'annotations', file), 'utf8'));
  gt.images = gt.images.slice(0, n);
  const ids = new Set(gt.images.map((im: { id: number }) => im.id));
  gt.annotations = gt.annotations.filter((a: { image_id: number }) => ids.has(a.image_id));
  const out = path.join(tempDir('casl-condinst-gt-'), file);
  writeFileSync(out, JSON.stringify(gt));
  return out;
}

t.test('the entity pipelines validate and choose tiny-condinst on the entity annotations', async (t) => {
  const lab = loadConfig(trainCommand, pipelineFile('labeler-entities'));
  t.equal(lab.model, 'tiny-condinst');
  t.match(lab.train, /labeled_entities\.json$/);
  const warm = loadConfig(trainCommand, pipelineFile('warmup-entities'));
  t.equal(warm.model, 'tiny-condinst');
  t.match(warm.train, /pseudo-labels-entities\/pseudo\.jsonl$/);
  const pl = loadConfig(pseudoLabelCommand, pipelineFile('pseudo-labels-entities'));
  t.equal(pl.model, 'runs/labeler-entities/model');
  t.equal(pl.delta, loadConfig(pseudoLabelCommand, pipelineFile('pseudo-labels')).delta, 'the same δ as the box pseudo labels');
});

t.test('loader: masks go through the same view as boxes (flip, scale) and are sampled at the output stride', async (t) => {
  const source = openCocoSource(path.join(SAMPLE, 'annotations', 'labeled_entities.json'), ROOT);
  const rec = await source.read(0);
  t.ok(rec.instances.every((x) => x.segmentation), 'entities all carry masks');
  const img = await decodeImage(path.join(ROOT, rec.file_name));
  const stride = TINY_CONDINST_MASK.outStride;
  let withMask = 0;
  for (let seed = 0; seed < 6; seed++) {
    const s = makeSample(rec, img, { g: 0, epoch: 0, pos: seed }, { policy: 'weak', seed, size: 64, mask: TINY_CONDINST_MASK }, () => 0);
    t.equal(s.masks!.length, s.boxes.length);
    s.masks!.forEach((m, i) => {
      const [x1, y1, x2, y2] = s.boxes[i];
      let on = 0;
      let outside = 0;
      for (let v = 0; v < 16; v++) for (let u = 0; u < 16; u++) {
        if (!m![v * 16 + u]) continue;
        on++;
        const x = u * stride + 2, y = v * stride + 2;
        // A rasterised polygon may touch a pixel its bbox stops at: one view pixel of slack.
        if (x < x1 - 1 || x > x2 + 1 || y < y1 - 1 || y > y2 + 1) outside++;
      }
      t.equal(outside, 0, `seed ${seed} instance ${i}: every mask sample lies in its box`);
      if (x2 - x1 > 12 && y2 - y1 > 12) t.ok(on > 0, `seed ${seed} instance ${i}: a box over 12 px has mask samples`);
    });
    if (s.masks!.some((m) => m!.some((v) => v))) withMask++;
  }
  t.equal(withMask, 6, 'every view keeps some mask');
  await source.close();
});

function options(over: Partial<TrainOptions>): TrainOptions {
  return {
    stage: 'labeler', train: subset('labeled_entities.json', 4), root: ROOT, out: tempDir('casl-condinst-'),
    model: 'tiny-condinst', size: 64, batchSize: 2, steps: 3, epochs: 0,
    optimizer: 'sgd', lr: 0.01, momentum: 0.9, weightDecay: 1e-4, schedule: 'constant', warmupSteps: 0, warmupFactor: 1,
    milestones: [], gamma: 0.1, clipNorm: 10, evalEvery: 0, checkpointEvery: 3, keepCheckpoints: 1, seed: 3,
    aug: 'weak', prefetch: 1, concurrency: 2, resume: false, initParts: [], classifierInit: 'copy', backend: 'wasm',
    ...over,
  };
}

t.test('tiny-condinst trains on entities with the dice term; finetune starts from it as from a box warmup', async (t) => {
  process.env.CASL_THREADS ??= '1';
  await initBackend('wasm', { log: () => {} });
  const o = options({});
  const s = await train(o);
  t.ok(s.finished);
  const rows = readFileSync(path.join(o.out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  for (const r of rows) {
    t.ok(Number.isFinite(r.loss_mask) && r.loss_mask > 0 && r.loss_mask <= 1, `step ${r.step}: dice ${r.loss_mask}`);
    t.ok(r.mask_instances > 0 && r.mask_instances <= 2 * TINY_CONDINST_MASK.maxInstancesPerImage);
    t.ok(Math.abs(r.loss - (r.loss_cls + r.loss_reg + r.loss_ctr + r.loss_mask)) < 1e-4, 'total = FCOS terms + dice (weight 1)');
  }
  const ft = options({
    stage: 'finetune', model: 'tiny-fcos', train: subset('labeled.json', 4), steps: 1, checkpointEvery: 1,
    init: s.modelDir, initParts: ['backbone', 'neck', 'head', 'classifier'], classifierInit: 'copy',
  });
  const f = await train(ft);
  t.ok(f.finished && Number.isFinite(f.lastLoss), 'a box finetune from the entity model runs');
});
