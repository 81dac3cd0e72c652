// casl bench augment: what the training loader costs beside a train step.
//   - resampling one image onto the 128 × 128 view: casl's TypeScript
//     separable filter vs sharp (libvips) resize + pad, same output size;
//   - a whole view per policy (draw, resample, colour ops, boxes);
//   - the streamed loader end to end (decode, strong views, targets,
//     collate) at B = 8, S = 128, in images/s;
//   - one tiny-fcos train step at B = 8, S = 128 on the chosen backend, so
//     the loader's main-thread time per batch can be read as a share of it.
// Inputs are the committed sample's labeled images (fixtures/sample).
import path from 'node:path';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs-core';
import type { Benchmark } from './benchmark.js';
import { PROJECT_ROOT } from '../src/cli/options.js';
import { GeometricTransform, type RgbImage } from '../src/augment/geometric.js';
import { POLICIES, drawTransform } from '../src/augment/policy.js';
import { Rng } from '../src/augment/rng.js';
import { decodeImage } from '../src/io/decode.js';
import { initBackend } from '../src/model/backend/index.js';
import { createDetector, disposeDetector, forward } from '../src/model/detector.js';
import { modelConfig } from '../src/model/config.js';
import { fcosLoss } from '../src/model/loss.js';
import { Optimizer, SGD_DEFAULTS } from '../src/model/optim.js';
import { makePoints } from '../src/model/points.js';
import { isErrorRecord } from '../src/records.js';
import { type TrainBatch, trainBatches } from '../src/train/loader.js';
import { openCocoSource } from '../src/train/source.js';

const S = 128;
const B = 8;
const SAMPLE = path.join(PROJECT_ROOT, 'fixtures', 'sample');

function msPer(n: number, f: () => void): number {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) f();
  return (performance.now() - t0) / n;
}

async function msPerAsync(n: number, f: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await f();
  return (performance.now() - t0) / n;
}

async function sharpLetterbox(img: RgbImage): Promise<Uint8Array> {
  const scale = S / Math.max(img.width, img.height);
  const w = Math.round(img.width * scale);
  const h = Math.round(img.height * scale);
  return sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .resize(w, h, { fit: 'fill' })
    .extend({ right: S - w, bottom: S - h, background: { r: 0, g: 0, b: 0 } })
    .raw()
    .toBuffer();
}

export const benchmark: Benchmark = {
  name: 'augment',
  summary: 'the training loader beside a train step: resampling (TypeScript vs sharp), views per policy, loader images/s, step time',
  async run({ quick, backend, log }) {
    const gtFile = path.join(SAMPLE, 'annotations', 'labeled.json');
    const root = path.join(SAMPLE, 'images', 'labeled');
    const source = openCocoSource(gtFile, root);
    const images: RgbImage[] = [];
    for (let i = 0; i < source.size; i++) images.push(await decodeImage(path.join(root, (await source.read(i)).file_name)));
    const reps = quick ? 3 : 20;
    let k = 0;
    const next = () => images[k++ % images.length];

    const tsMs = msPer(reps * images.length, () => {
      const img = next();
      GeometricTransform.letterbox(img.width, img.height, S).applyImage(img);
    });
    const sharpMs = await msPerAsync(reps * images.length, () => sharpLetterbox(next()));
    log(`letterbox resample: TypeScript ${tsMs.toFixed(3)} ms, sharp ${sharpMs.toFixed(3)} ms per image`);

    const offMs = await msPerAsync(reps * images.length, async () => {
      const img = next();
      await drawTransform('strong', new Rng(k), img.width, img.height, S).applyImageOffThread(img);
    });
    log(`strong view with sharp resampling: ${offMs.toFixed(3)} ms per image, end to end (the resize itself off the main thread)`);
    const policyMs: Record<string, number> = {};
    for (const p of POLICIES) {
      const rng = new Rng(1);
      policyMs[p] = msPer(reps * images.length, () => {
        const img = next();
        const t = drawTransform(p, rng, img.width, img.height, S);
        t.applyImage(img);
        t.applyBoxes([[10, 10, 60, 60], [30, 40, 120, 90]]);
      });
    }
    log(`views: ${POLICIES.map((p) => `${p} ${policyMs[p].toFixed(3)} ms`).join(', ')}`);

    const cfg = modelConfig('tiny-fcos', { inputSize: S });
    const points = makePoints(cfg, S);
    const nBatches = quick ? 5 : 40;
    const stream = trainBatches(source, { batchSize: B, size: S, policy: 'strong', seed: 1, classAgnostic: true, points, centerRadius: cfg.centerRadius, prefetch: 1, concurrency: 4 });
    const pull = () => new Promise<unknown>((res, rej) => stream.pull((e, x) => (e ? rej(e) : res(x))));
    await pull();
    const t0 = performance.now();
    let got = 0;
    let lastBatch: TrainBatch | undefined;
    while (got < nBatches) {
      const x = await pull();
      if (!isErrorRecord(x)) {
        got++;
        lastBatch = x as TrainBatch;
      }
    }
    const loaderImgS = (nBatches * B) / ((performance.now() - t0) / 1000);
    stream.destroy();
    log(`loader (strong, B ${B}, S ${S}, from disk): ${loaderImgS.toFixed(0)} images/s`);

    const info = await initBackend(backend, { log });
    const det = createDetector(cfg, { seed: 1 });
    const opt = new Optimizer(SGD_DEFAULTS);
    const vars = [...det.params.values()];
    const names = [...det.params.keys()];
    const stepOnce = () => {
      const x = tf.tensor4d(lastBatch!.images, [B, S, S, 3]);
      const { value, grads } = tf.variableGrads(() => fcosLoss(forward(det, x), lastBatch!.targets, points).total, vars);
      opt.apply(det.params, new Map(Object.values(grads).map((g, i) => [names[i], g])), 1e-3);
      value.dataSync();
      tf.dispose([x, value, ...Object.values(grads)]);
    };
    stepOnce();
    const steps = quick ? 1 : 4;
    const stepMs = msPer(steps, stepOnce);
    opt.dispose();
    disposeDetector(det);
    const loaderMsPerBatch = (1000 * B) / loaderImgS;
    return {
      figures: {
        resample_ts_ms: tsMs, resample_sharp_ms: sharpMs,
        view_strong_sharp_ms: offMs, view_none_ms: policyMs.none, view_weak_ms: policyMs.weak, view_strong_ms: policyMs.strong,
        loader_images_per_s: loaderImgS, loader_ms_per_batch: loaderMsPerBatch,
        train_step_ms: stepMs, loader_to_step_ratio: loaderMsPerBatch / stepMs, backend: info.name,
      },
      table: [
        ['what', 'ms', 'per'],
        ['letterbox resample, TypeScript', tsMs, 'image'],
        ['letterbox resample, sharp resize + extend', sharpMs, 'image'],
        ...POLICIES.map((p) => [`view '${p}' (draw + resample + colour + boxes)`, policyMs[p], 'image']),
        ["view 'strong', resampled by sharp (the loader's path)", offMs, 'image'],
        [`loader, strong, decode from disk (${loaderImgS.toFixed(0)} images/s)`, loaderMsPerBatch, `batch of ${B}`],
        [`train step, tiny-fcos, ${info.name}`, stepMs, `batch of ${B}`],
      ],
      notes: [
        `Inputs: the ${images.length} labeled images of fixtures/sample (${images.map((i) => `${i.width}×${i.height}`).slice(0, 3).join(', ')}, …), S = ${S}.`,
        'The loader runs beside the train step (decode on libuv threads, the rest between steps); the train loop waits only when a batch is not ready: see data_wait_frac in a run\'s metrics.jsonl.',
      ],
    };
  },
};
