// `casl bench model`: tiny-fcos at S = 128, K = 1 — a training step at B = 8
// (forward, targets, loss, backward, SGD), inference at B = 16 including
// post-processing, and forward only, on each available backend; beside it,
// in the same run, the PyTorch reference of the same spec
// (../shared/reference/tiny_fcos_torch.py) when /usr/bin/python3 has torch.
//
// JSON: the first backend's figures under the keys (backend,
// train_step_ms, infer_images_per_s, forward_images_per_s), every further
// backend's under the same keys prefixed with its name (cpu_train_step_ms, …),
// `backends` listing them; torch_* figures and the ratios casl/torch
// (train_ratio: step time, lower is better; infer_ratio, forward_ratio:
// throughput, higher is better); per core, from CPU time: PyTorch on one
// thread (torch_1t_train_step_cpu_ms, torch_1t_infer_cpu_ms) against casl's
// CPU time on all its threads (train_step_cpu_ms, infer_cpu_ms), as
// cpu_train_ratio and cpu_infer_ratio (same senses); null where something
// could not run. With
// the native convolution kernels (backend wasm+native), the wasm kernels
// alone are measured too, under wasm_kernels_*.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import type { Benchmark, BenchResult } from './benchmark.js';
import { PROJECT_ROOT } from '../src/cli/options.js';
import { type BackendInfo, type ResolvedBackend, describeBackend, initBackend } from '../src/model/backend/index.js';
import { stopNativeKernels, useNativeKernels } from '../src/model/backend/native.js';
import { DataParallel } from '../src/model/backend/parallel.js';
import { profileKernels } from '../src/model/backend/profile.js';
import { modelConfig } from '../src/model/config.js';
import { type Detector, createDetector, disposeDetector, disposeOutput, forward } from '../src/model/detector.js';
import { Optimizer, SGD_DEFAULTS } from '../src/model/optim.js';
import { seededRandom } from '../src/model/params.js';
import { makePoints } from '../src/model/points.js';
import { postprocess } from '../src/model/postprocess.js';
import { lossAndGrads, trainStep } from '../src/model/train-step.js';

const S = 128;
const K = 1;
const TRAIN_B = 8;
const INFER_B = 16;
const PYTHON = '/usr/bin/python3';
const TORCH_REF = process.env.CASL_TORCH_REFERENCE ?? path.resolve(PROJECT_ROOT, '..', 'shared', 'reference', 'tiny_fcos_torch.py');

/** tfjs's registry name of each casl backend. */
const TF_NAME: Record<ResolvedBackend, string> = { 'tfjs-node-gpu': 'tensorflow', 'tfjs-node': 'tensorflow', wasm: 'wasm', cpu: 'cpu' };

const run = promisify(execFile);

/** Random images and 1–6 random boxes each, like the reference's synth_batch (S = 128). */
export function syntheticBatch(B: number, seed: number): { images: tf.Tensor4D; gt: { boxes: number[][]; labels: number[] }[] } {
  const r = seededRandom(seed);
  const pixels = new Float32Array(B * S * S * 3);
  for (let i = 0; i < pixels.length; i++) pixels[i] = r();
  const gt = Array.from({ length: B }, () => {
    const n = 1 + Math.floor(r() * 6);
    const boxes: number[][] = [];
    for (let i = 0; i < n; i++) {
      const w = 8 + r() * (S / 2), h = 8 + r() * (S / 2);
      const x = r() * (S - w), y = r() * (S - h);
      boxes.push([x, y, x + w, y + h]);
    }
    return { boxes, labels: boxes.map(() => 0) };
  });
  return { images: tf.tensor4d(pixels, [B, S, S, 3]), gt };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Medians over `iters` runs after `warmup`: wall time, and process CPU time (all threads). */
async function timeIt(warmup: number, iters: number, f: () => Promise<void>): Promise<{ wallMs: number; cpuMs: number }> {
  for (let i = 0; i < warmup; i++) await f();
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < iters; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await f();
    wall.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  return { wallMs: median(wall), cpuMs: median(cpu) };
}

interface Figures {
  train_step_ms: number;
  /** Process CPU time per step, all threads: what the step costs on a busy machine. */
  train_step_cpu_ms: number;
  infer_images_per_s: number;
  /** Process CPU time per inference batch (B = 16, with post-processing), all threads. */
  infer_cpu_ms: number;
  forward_images_per_s: number;
}

/** With `dp`, the train step and inference go through it (the batch split over its replicas). */
async function measure(det: Detector, iters: { warmup: number; n: number }, dp?: DataParallel): Promise<Figures> {
  const cfg = det.config;
  const points = makePoints(cfg, S);
  const opt = new Optimizer(SGD_DEFAULTS);
  const trainBatches = [syntheticBatch(TRAIN_B, 1), syntheticBatch(TRAIN_B, 2)];
  const inferImages = [syntheticBatch(INFER_B, 3).images, syntheticBatch(INFER_B, 4).images];
  let it = 0;
  const train = await timeIt(iters.warmup, iters.n, async () => {
    await (dp ? dp.trainStep(opt, trainBatches[it++ % 2], { lr: 0.01, points }) : trainStep(det, opt, trainBatches[it++ % 2], { lr: 0.01, points }));
  });
  it = 0;
  const infer = await timeIt(iters.warmup, iters.n, async () => {
    if (dp) {
      await dp.predict(inferImages[it++ % 2]);
      return;
    }
    const out = forward(det, inferImages[it++ % 2]);
    await postprocess(out, points, S, cfg.inference);
    disposeOutput(out);
  });
  const forwardMs = dp ? NaN : (await timeIt(iters.warmup, iters.n, async () => {
    const out = forward(det, inferImages[it++ % 2]);
    await Promise.all([out.cls.data(), out.box.data(), out.ctr.data()]);
    disposeOutput(out);
  })).wallMs;
  tf.dispose([...trainBatches.map((b) => b.images), ...inferImages]);
  opt.dispose();
  return {
    train_step_ms: train.wallMs, train_step_cpu_ms: train.cpuMs,
    infer_images_per_s: INFER_B / (infer.wallMs / 1000), infer_cpu_ms: infer.cpuMs, forward_images_per_s: INFER_B / (forwardMs / 1000),
  };
}

interface TorchFigures {
  torch_train_step_ms: number | null;
  torch_infer_images_per_s: number | null;
  torch_forward_images_per_s: number | null;
  /** One thread, CPU time (the reference's timers read process_time): what a step costs per core, little moved by load. */
  torch_1t_train_step_cpu_ms: number | null;
  torch_1t_infer_cpu_ms: number | null;
  torch_version: string | null;
}

/**
 * The reference's own train_bench / infer_bench on one thread, with its
 * timer (time.perf_counter) read as process CPU time instead of wall time.
 */
const TORCH_CPU_SNIPPET = `
import json, sys, time
sys.path.insert(0, sys.argv[1])
time.perf_counter = time.process_time
import torch
import tiny_fcos_torch as R
torch.set_num_threads(1)
w, n = int(sys.argv[2]), int(sys.argv[3])
tr = R.train_bench(${TRAIN_B}, ${S}, ${K}, w, n)
inf = R.infer_bench(${INFER_B}, ${S}, ${K}, w, n)
print(json.dumps({"train": tr["total"]["median_ms"], "infer": inf["total"]["median_ms"]}))
`;

async function torchReference(quick: boolean, log: (l: string) => void): Promise<TorchFigures> {
  const none: TorchFigures = {
    torch_train_step_ms: null, torch_infer_images_per_s: null, torch_forward_images_per_s: null,
    torch_1t_train_step_cpu_ms: null, torch_1t_infer_cpu_ms: null, torch_version: null,
  };
  if (!existsSync(PYTHON) || !existsSync(TORCH_REF)) {
    log(`PyTorch reference not run: ${existsSync(PYTHON) ? TORCH_REF : PYTHON} not found`);
    return none;
  }
  try {
    await run(PYTHON, ['-c', 'import torch'], { timeout: 60_000 });
  } catch {
    log(`PyTorch reference not run: ${PYTHON} cannot import torch`);
    return none;
  }
  const iters = quick ? ['--warmup', '1', '--iters', '3'] : ['--iters', '20'];
  const shape = ['--S', String(S), '--K', String(K)];
  const train = JSON.parse((await run(PYTHON, [TORCH_REF, 'train-bench', '--B', String(TRAIN_B), ...shape, ...iters], { timeout: 600_000 })).stdout);
  const infer = JSON.parse((await run(PYTHON, [TORCH_REF, 'infer-bench', '--B', String(INFER_B), ...shape, ...iters], { timeout: 600_000 })).stdout);
  const cpuIters = quick ? ['1', '3'] : ['2', '10'];
  const cpu = JSON.parse((await run(PYTHON, ['-c', TORCH_CPU_SNIPPET, path.dirname(TORCH_REF), ...cpuIters], { timeout: 600_000 })).stdout);
  return {
    torch_1t_train_step_cpu_ms: cpu.train,
    torch_1t_infer_cpu_ms: cpu.infer,
    torch_train_step_ms: train.train.total.median_ms,
    torch_infer_images_per_s: infer.infer.imgs_per_s,
    torch_forward_images_per_s: infer.infer.imgs_per_s_fwd_only,
    torch_version: `${train.env.torch} (${train.env.threads} threads)`,
  };
}

/** The chosen backend first, then every other one that is registered and initialises. */
async function backendsToMeasure(chosen: BackendInfo, onlyChosen: boolean): Promise<ResolvedBackend[]> {
  if (onlyChosen) return [chosen.name];
  const others: ResolvedBackend[] = ['wasm', 'cpu'];
  return [chosen.name, ...others.filter((b) => b !== chosen.name)];
}

export const benchmark: Benchmark = {
  name: 'model',
  summary: `tiny-fcos S=${S} K=${K}: train step (B=${TRAIN_B}), inference with post-processing and forward only (B=${INFER_B}), per backend, beside PyTorch`,
  async run(opts): Promise<BenchResult> {
    const chosen = await initBackend(opts.backend, { log: opts.log });
    const names = await backendsToMeasure(chosen, opts.backend !== undefined);
    const figures: BenchResult['figures'] = { backend: describeBackend(chosen), backends: names.join(',') };
    const table: (string | number)[][] = [['backend', 'train step ms (B=8)', 'train step CPU ms', 'infer images/s (B=16, with post-proc.)', 'forward images/s (B=16)']];
    const notes: string[] = [];

    const torch = await torchReference(opts.quick, opts.log);
    if (torch.torch_train_step_ms !== null) {
      opts.log(`PyTorch: train step ${torch.torch_train_step_ms.toFixed(0)} ms, inference ${torch.torch_infer_images_per_s!.toFixed(1)} images/s, ` +
        `forward ${torch.torch_forward_images_per_s!.toFixed(1)} images/s; on one thread, CPU time: train step ${torch.torch_1t_train_step_cpu_ms!.toFixed(0)} ms, ` +
        `inference ${torch.torch_1t_infer_cpu_ms!.toFixed(0)} ms per ${INFER_B} images`);
    }
    Object.assign(figures, torch);

    const cfg = modelConfig('tiny-fcos', { numClasses: K, inputSize: S });
    for (const [i, name] of names.entries()) {
      if (!(await tf.setBackend(TF_NAME[name]))) {
        opts.log(`${name}: did not initialise, skipped`);
        continue;
      }
      // The pure-JS backend takes many seconds a step: two timed iterations say enough.
      const iters = name === 'cpu' ? { warmup: 1, n: 2 } : opts.quick ? { warmup: 1, n: 3 } : { warmup: 3, n: 20 };
      opts.log(`${name}: measuring (${iters.warmup} warm-up + ${iters.n} timed iterations each)`);
      const det = createDetector(cfg, { seed: 0 });
      const f = await measure(det, iters);
      opts.log(`${name}: train step ${f.train_step_ms.toFixed(0)} ms (${f.train_step_cpu_ms.toFixed(0)} ms CPU), ` +
        `inference ${f.infer_images_per_s.toFixed(1)} images/s, forward ${f.forward_images_per_s.toFixed(1)} images/s`);
      const prefix = i === 0 ? '' : `${name}_`;
      figures[`${prefix}train_step_ms`] = f.train_step_ms;
      figures[`${prefix}train_step_cpu_ms`] = f.train_step_cpu_ms;
      figures[`${prefix}infer_images_per_s`] = f.infer_images_per_s;
      figures[`${prefix}infer_cpu_ms`] = f.infer_cpu_ms;
      figures[`${prefix}forward_images_per_s`] = f.forward_images_per_s;
      table.push([i === 0 ? describeBackend(chosen) : name, f.train_step_ms, f.train_step_cpu_ms, f.infer_images_per_s, f.forward_images_per_s]);
      if (i === 0) {
        const batch = syntheticBatch(TRAIN_B, 5);
        const prof = await profileKernels(() => {
          const { grads, loss } = lossAndGrads(det, batch);
          tf.dispose([...grads.values(), ...loss]);
        });
        // tf.profile also records op scopes (custom gradients, fused ops) around kernels: count kernels only.
        const kernels = prof.kernels.filter((k) => tf.getKernel(k.kernel, TF_NAME[name]));
        const total = kernels.reduce((s, k) => s + k.ms, 0);
        notes.push(`Kernel profile of one ${name} training step (forward + backward, ${total.toFixed(0)} ms in kernels of ${prof.wallMs.toFixed(0)} ms profiled):`);
        for (const k of kernels.slice(0, 12)) notes.push(`  ${k.kernel.padEnd(26)} ${k.ms.toFixed(1).padStart(8)} ms  ${String(k.calls).padStart(5)} calls`);
        batch.images.dispose();
      }
      disposeDetector(det);
    }
    // With native convolutions: the same wasm backend without them, side by side.
    if (names[0] === 'wasm' && chosen.native) {
      await tf.setBackend('wasm');
      stopNativeKernels();
      // A comparison, not an acceptance figure: few iterations keep the locked run short.
      const iters = opts.quick ? { warmup: 1, n: 3 } : { warmup: 1, n: 7 };
      opts.log(`wasm without the native kernels: measuring (${iters.warmup} warm-up + ${iters.n} timed iterations each)`);
      const det = createDetector(cfg, { seed: 0 });
      try {
        const f = await measure(det, iters);
        opts.log(`wasm without native: train step ${f.train_step_ms.toFixed(0)} ms (${f.train_step_cpu_ms.toFixed(0)} ms CPU), ` +
          `inference ${f.infer_images_per_s.toFixed(1)} images/s, forward ${f.forward_images_per_s.toFixed(1)} images/s`);
        for (const [k, v] of Object.entries(f)) figures[`wasm_kernels_${k}`] = v;
        table.push([`wasm kernels only (SIMD, ${chosen.threads} thread${chosen.threads === 1 ? '' : 's'})`, f.train_step_ms, f.train_step_cpu_ms, f.infer_images_per_s, f.forward_images_per_s]);
      } finally {
        disposeDetector(det);
        useNativeKernels(chosen.native.threads);
      }
    }
    // Both cores by data parallelism (src/model/backend/parallel.ts), when wasm runs on one thread.
    const cores = os.cpus().length;
    if (names[0] === 'wasm' && chosen.threads === 1 && cores > 1 && !opts.quick) {
      await tf.setBackend('wasm');
      opts.log(`wasm ×${cores} data-parallel replicas: measuring`);
      const det = createDetector(cfg, { seed: 0 });
      const dp = await DataParallel.start(det, cores);
      const f = await measure(det, { warmup: 3, n: 20 }, dp);
      await dp.close();
      disposeDetector(det);
      figures.dp_train_step_ms = f.train_step_ms;
      figures.dp_train_step_cpu_ms = f.train_step_cpu_ms;
      figures.dp_infer_images_per_s = f.infer_images_per_s;
      table.push([`wasm, ${cores} data-parallel replicas`, f.train_step_ms, f.train_step_cpu_ms, f.infer_images_per_s, '']);
    }
    if (names.includes('cpu') && names[0] !== 'cpu' && typeof figures.cpu_train_step_ms === 'number') {
      figures.cpu_slowdown_train = (figures.cpu_train_step_ms as number) / (figures.train_step_ms as number);
    }
    await tf.setBackend(TF_NAME[chosen.name]);

    const ratio = (a: unknown, b: unknown) => (typeof a === 'number' && typeof b === 'number' ? a / b : null);
    figures.train_ratio = ratio(figures.train_step_ms, torch.torch_train_step_ms);
    figures.infer_ratio = ratio(figures.infer_images_per_s, torch.torch_infer_images_per_s);
    figures.forward_ratio = ratio(figures.forward_images_per_s, torch.torch_forward_images_per_s);
    // Per core: casl's CPU time (all its threads) against PyTorch's on one thread.
    figures.cpu_train_ratio = ratio(figures.train_step_cpu_ms, torch.torch_1t_train_step_cpu_ms);
    figures.cpu_infer_ratio = ratio(torch.torch_1t_infer_cpu_ms, figures.infer_cpu_ms);
    if (torch.torch_train_step_ms !== null) {
      table.push([`PyTorch ${torch.torch_version}`, torch.torch_train_step_ms, '', torch.torch_infer_images_per_s!, torch.torch_forward_images_per_s!]);
      table.push(['PyTorch, 1 thread, CPU time', '', torch.torch_1t_train_step_cpu_ms!, `${torch.torch_1t_infer_cpu_ms!.toFixed(0)} ms CPU per ${INFER_B}`, '']);
      table.push([`${chosen.name} / PyTorch`, `${(figures.train_ratio as number).toFixed(2)}× the time`,
        `${(figures.cpu_train_ratio as number).toFixed(2)}× the CPU (${(figures.cpu_infer_ratio as number).toFixed(2)}× PyTorch's images per CPU-second)`,
        `${(figures.infer_ratio as number).toFixed(2)}× the rate`, `${(figures.forward_ratio as number).toFixed(2)}× the rate`]);
    } else {
      notes.push('PyTorch reference not measured (no /usr/bin/python3 with torch): torch_* and *_ratio are null.');
    }
    notes.push('Medians over the timed iterations; the machine is shared, so compare figures from one run.');
    return { figures, table, notes };
  },
};
