// `casl bench condinst`: what the CondInst masks cost. A training step of
// tiny-condinst (FCOS losses + dice over the preset's ≤ 16 positives an image) beside
// tiny-fcos's box-only step, same B = 8, S = 128, same synthetic batches
// (random images, 1–6 boxes each with an elliptical mask inside), on the
// same backend; and inference with masks (forward, post-processing, the
// dynamic head on every detection, each mask as RLE on a 256 × 256
// original) beside box-only inference.
// The models take turns step by step, so a load change on a shared
// machine hits both alike; the ratio is the figure to read.
//
// A third model in the same rotation, tiny-condinst with the mask loss's
// cap raised to 64 positives an image (`mask.maxInstancesPerImage`; the
// preset has 16), shows what the cap buys.
//
// JSON: backend, box_train_step_ms, mask_train_step_ms, train_ratio (≤ 1.5
// is the bar), mask64_train_step_ms, train_ratio_64,
// box_infer_images_per_s, mask_infer_images_per_s, mask_instances_per_step
// and mask64_instances_per_step (slots the dice loss saw), train_cpu_ms
// (process CPU per step of each model, less load-sensitive), loadavg.
import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import type { Benchmark, BenchResult } from './benchmark.js';
import { describeBackend, initBackend } from '../src/model/backend/index.js';
import { modelConfig } from '../src/model/config.js';
import { type Detector, createDetector, disposeDetector, disposeOutput, forward } from '../src/model/detector.js';
import { enableGradients } from '../src/model/gradients.js';
import { fcosLoss } from '../src/model/loss.js';
import { Optimizer, SGD_DEFAULTS } from '../src/model/optim.js';
import { type Points, makePoints } from '../src/model/points.js';
import { postprocess } from '../src/model/postprocess.js';
import { type Targets, fcosTargets } from '../src/model/targets.js';
import { syntheticBatch } from './model.js';
import { addMaskLoss } from '../src/model/condinst/loss.js';
import { type MaskTargets, maskTargets } from '../src/model/condinst/mask-targets.js';
import { maskToOriginal, predictMasks } from '../src/model/condinst/predict-masks.js';
import { GeometricTransform } from '../src/augment/geometric.js';

const S = 128;
const B = 8;
const INFER_B = 16;

interface SynthBatch {
  images: tf.Tensor4D;
  targets: Targets;
  /** At the preset's cap, and at 64 an image. */
  masks: MaskTargets;
  masks64: MaskTargets;
}

function synthBatch(seed: number, points: Points, b: number): SynthBatch {
  const { images, gt } = syntheticBatch(b, seed);
  const side = S / 4;
  const masks = gt.map((g) => g.boxes.map(([x1, y1, x2, y2]) => {
    const m = new Uint8Array(side * side);
    const cx = (x1 + x2) / 2, cy = (y1 + y2) / 2, rx = (x2 - x1) / 2, ry = (y2 - y1) / 2;
    for (let v = 0; v < side; v++) for (let u = 0; u < side; u++) {
      const dx = (4 * u + 2 - cx) / rx, dy = (4 * v + 2 - cy) / ry;
      if (dx * dx + dy * dy <= 1) m[v * side + u] = 1;
    }
    return m;
  }));
  const cfgMask = modelConfig('tiny-condinst').mask!;
  const targets = fcosTargets(points, gt, 1.5);
  return {
    images, targets,
    masks: maskTargets(targets, points, masks, side, side, cfgMask, S),
    masks64: maskTargets(targets, points, masks, side, side, { ...cfgMask, maxInstancesPerImage: 64 }, S),
  };
}

/** The trainer's step (src/train/trainer.ts): forward, losses, backward, SGD. */
async function trainStep(det: Detector, opt: Optimizer, batch: SynthBatch, masks: MaskTargets, points: Points): Promise<void> {
  const names = [...det.params.keys()];
  const byTfName = new Map(names.map((n) => [det.params.get(n)!.name, n]));
  const { value, grads } = tf.variableGrads(() => {
    const out = forward(det, batch.images);
    const l = fcosLoss(out, batch.targets, points);
    if (!det.config.mask) return l.total;
    const m = addMaskLoss(det.params, out, l.total, masks, det.config.mask);
    return m.total;
  }, names.map((n) => det.params.get(n)!));
  const named = new Map<string, tf.Tensor>();
  for (const [k, g] of Object.entries(grads)) named.set(byTfName.get(k)!, g);
  opt.apply(det.params, named, 0.01);
  await value.data();
  tf.dispose([value, ...Object.values(grads)]);
}

async function infer(det: Detector, images: tf.Tensor4D, points: Points): Promise<void> {
  const out = forward(det, images);
  try {
    const dets = await postprocess(out, points, S, det.config.inference);
    if (!det.config.mask) return;
    // As casl infer does: every detection's mask as RLE on a 256 × 256 original.
    const back = GeometricTransform.letterbox(256, 256, S).inverse();
    for (const perImage of await predictMasks(det.params, out, dets, points, S, det.config.mask)) for (const m of perImage) maskToOriginal(m, back, 256, 256);
  } finally {
    disposeOutput(out);
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Runs the steps in rotation, `n` timed rounds after `warmup`: each one's median wall ms and mean process CPU ms. */
async function rotate(warmup: number, n: number, steps: ((i: number) => Promise<void>)[]): Promise<{ wall: number; cpu: number }[]> {
  const wall: number[][] = steps.map(() => []);
  const cpu: number[][] = steps.map(() => []);
  for (let i = 0; i < warmup + n; i++) {
    for (const [k, step] of steps.entries()) {
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      await step(i);
      const c = process.cpuUsage(c0);
      if (i < warmup) continue;
      wall[k].push(performance.now() - t0);
      cpu[k].push((c.user + c.system) / 1000);
    }
  }
  return steps.map((_, k) => ({ wall: median(wall[k]), cpu: cpu[k].reduce((x, y) => x + y, 0) / n }));
}

export const benchmark: Benchmark = {
  name: 'condinst',
  summary: `tiny-condinst vs tiny-fcos at S=${S}: train step (B=${B}) with the dice loss vs box-only, inference with masks vs boxes (B=${INFER_B})`,
  async run(opts): Promise<BenchResult> {
    const info = await initBackend(opts.backend, { log: opts.log });
    await enableGradients();
    const box = createDetector(modelConfig('tiny-fcos'), { seed: 0 });
    const mask = createDetector(modelConfig('tiny-condinst'), { seed: 0 });
    const mask64 = createDetector(modelConfig('tiny-condinst'), { seed: 0 });
    const points = makePoints(box.config, S);
    const batches = [synthBatch(1, points, B), synthBatch(2, points, B)];
    const inferImages = [synthBatch(3, points, INFER_B).images, synthBatch(4, points, INFER_B).images];
    const optBox = new Optimizer(SGD_DEFAULTS);
    const optMask = new Optimizer(SGD_DEFAULTS);
    const optMask64 = new Optimizer(SGD_DEFAULTS);
    const iters = opts.quick ? { warmup: 1, n: 3 } : { warmup: 3, n: 15 };
    const load0 = os.loadavg()[0];
    opts.log(`train steps: ${iters.warmup} warm-up + ${iters.n} timed, in rotation: box-only, masks, masks at 64 an image`);
    const [boxStep, maskStep, mask64Step] = await rotate(iters.warmup, iters.n, [
      (i) => trainStep(box, optBox, batches[i % 2], batches[i % 2].masks, points),
      (i) => trainStep(mask, optMask, batches[i % 2], batches[i % 2].masks, points),
      (i) => trainStep(mask64, optMask64, batches[i % 2], batches[i % 2].masks64, points),
    ]);
    const [boxMs, maskMs, mask64Ms] = [boxStep.wall, maskStep.wall, mask64Step.wall];
    opts.log('inference: alternating box-only and masks');
    const [boxInfer, maskInfer] = (await rotate(iters.warmup, iters.n, [
      (i) => infer(box, inferImages[i % 2], points),
      (i) => infer(mask, inferImages[i % 2], points),
    ])).map((r) => r.wall);
    const load1 = os.loadavg()[0];
    const slots = batches.map((b) => b.masks.count);
    const slots64 = batches.map((b) => b.masks64.count);
    tf.dispose([...batches.map((b) => b.images), ...inferImages]);
    optBox.dispose();
    optMask.dispose();
    optMask64.dispose();
    disposeDetector(box);
    disposeDetector(mask);
    disposeDetector(mask64);
    const figures: BenchResult['figures'] = {
      backend: describeBackend(info),
      box_train_step_ms: boxMs,
      mask_train_step_ms: maskMs,
      train_ratio: maskMs / boxMs,
      mask64_train_step_ms: mask64Ms,
      train_ratio_64: mask64Ms / boxMs,
      train_cpu_ms: `box ${boxStep.cpu.toFixed(0)}, masks ${maskStep.cpu.toFixed(0)} (${(maskStep.cpu / boxStep.cpu).toFixed(2)}×), masks at 64 ${mask64Step.cpu.toFixed(0)} (${(mask64Step.cpu / boxStep.cpu).toFixed(2)}×)`,
      box_infer_images_per_s: INFER_B / (boxInfer / 1000),
      mask_infer_images_per_s: INFER_B / (maskInfer / 1000),
      mask_instances_per_step: (slots[0] + slots[1]) / 2,
      mask64_instances_per_step: (slots64[0] + slots64[1]) / 2,
      loadavg: `${load0.toFixed(1)} → ${load1.toFixed(1)}`,
    };
    return {
      figures,
      table: [
        ['', 'tiny-fcos (boxes)', 'tiny-condinst (boxes + masks)', 'ratio'],
        [`train step ms (B=${B})`, boxMs, maskMs, maskMs / boxMs],
        [`train step CPU ms (B=${B})`, boxStep.cpu, maskStep.cpu, maskStep.cpu / boxStep.cpu],
        [`train step ms, masks at 64 an image`, boxMs, mask64Ms, mask64Ms / boxMs],
        [`inference images/s (B=${INFER_B})`, INFER_B / (boxInfer / 1000), INFER_B / (maskInfer / 1000), boxInfer / maskInfer],
      ],
      notes: [
        `backend ${describeBackend(info)}; ${os.cpus().length} cores, 1-min load average ${load0.toFixed(1)} → ${load1.toFixed(1)} over the run`,
        `the dice loss saw ${figures.mask_instances_per_step} positives a step (≤ ${mask.config.mask!.maxInstancesPerImage} an image), ${figures.mask64_instances_per_step} at 64 an image; inference makes an RLE mask of every detection (random weights: ≤ 100 an image) on a 256 × 256 original`,
      ],
    };
  },
};
