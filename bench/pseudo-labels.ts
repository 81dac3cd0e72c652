// casl bench pseudo-labels: end-to-end pseudo-labeling throughput against
// the model alone, and memory at 2,000 and 20,000 images.
//
// The images are fixture scenes (casl fixtures, 200 distinct unlabeled
// images, hard-linked under new names up to the count needed), so decoding
// and inference see the data `make pseudo-labels` sees. Two models:
//
//   the job's labeler   fixtures/labeler, the one `make pseudo-labels` uses
//                       (tiny-fcos at S = 256): the headline figures
//   tiny-fcos S = 128   the reference model with the parity weights when
//                       ../shared has them, else seeded: four times cheaper
//                       an image, so decoding weighs four times more
//                       (figures prefixed s128_; no 20,000-image run)
//
// For each, and for 1 (the default) and 2 worker threads:
//   end_to_end   `casl pseudo-label --workers W` in a child process over
//                2,000 files: ingest, decode, batched inference in W worker
//                threads, δ filter, writing
//   model_only   forward + post-processing on pre-decoded batches of the
//                same size, through the same W workers (one-thread wasm
//                each), kept busy: the ceiling of that configuration. They
//                get the decoded bytes and scale them to float32 as in the
//                end-to-end run. Also on this thread with its own thread
//                count (CASL_THREADS), the path without workers, so the
//                fastest model-only way of this machine is known too
//   memory       the child's peak RSS and live tensor count at the end
//                (main thread plus workers), over 2,000 and 20,000 files
//                (the job's labeler, 1 worker)
import { spawnSync } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { Benchmark } from './benchmark.js';
import { PROJECT_ROOT } from '../src/cli/options.js';
import { describeBackend, initBackend } from '../src/model/backend/index.js';
import { type Detector, createDetector, disposeDetector, loadDetector, loadTorchWeights, makePoints, postprocess, forward, disposeOutput, saveCheckpoint, TINY_FCOS } from '../src/model/index.js';
import { decodeLetterboxed, toFloat32 } from '../src/io/decode.js';
import { InferencePool } from '../src/label/infer-pool.js';

const CASL = path.join(PROJECT_ROOT, 'bin', 'casl.js');
const PARITY = path.resolve(PROJECT_ROOT, '..', 'shared', 'parity', 'tiny-fcos-k1');
/** The labeler `make pseudo-labels` uses on a fresh clone (Makefile: LABELER_CKPT). */
const LABELER = path.join(PROJECT_ROOT, 'fixtures', 'labeler');
const DISTINCT = 200;
const BATCH = 16;
/** The default of pipelines/pseudo-labels.yaml, measured end to end at 2,000 and 20,000 images. */
const WORKERS = 2;

interface RunStats {
  seconds: number;
  images_per_s: number;
  peak_rss_mb: number;
  tensors: number;
  kept: number;
  dropped: number;
  errors: number;
  worker_busy_fraction: number;
  cpu_s: number;
}

function run(cmd: string[], what: string): void {
  const r = spawnSync(process.execPath, [CASL, ...cmd], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`bench pseudo-labels: ${what} failed (${r.status}): ${r.stderr.slice(-2000)}`);
}

/** `n` image files in `dir`: the distinct scenes, hard-linked under new names as often as needed. */
function populate(dir: string, scenes: string[], n: number): void {
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < n; i++) {
    const src = scenes[i % scenes.length];
    linkSync(src, path.join(dir, `img_${String(i).padStart(6, '0')}${path.extname(src)}`));
  }
}

/** One model measured: end to end against its model-only ceilings, per worker configuration. */
interface Measured {
  S: number;
  e2e: Record<number, RunStats>;
  /** Model-only images/s: per worker count, and 'main' (this thread, no workers). */
  ceiling: Record<string | number, number>;
  /** Model-only CPU ms an image, the least of its passes. */
  modelCpu: Record<string | number, number>;
  /** End to end over `large` images with WORKERS workers, when asked. */
  big?: RunStats;
}

/** The worker counts measured side by side (the default among them). */
const CONFIGS = [1, 2];

/**
 * The model `det` (saved at `ckpt`) on the scenes: for each worker count,
 * model alone / end to end over `small` images / model alone again (the
 * better pass is the ceiling, so the machine's drifting load falls on both
 * alike), the model on this thread, and optionally `large` images end to end.
 */
async function measure(det: Detector, ckpt: string, scenes: string[], work: string, backendName: string, small: number, large: number | null, log: (l: string) => void): Promise<Measured> {
  // The ceiling: batches of already letterboxed images, forward +
  // post-processing. Every scene, in order, so that the model alone sees
  // the images the end-to-end run sees: a trained labeler's post-processing
  // cost follows each image's candidates (with the first 16 scenes only,
  // end to end came out 6–9 % faster than its "ceiling" at S = 256).
  const S = det.config.inputSize;
  const size = BATCH * S * S * 3;
  const batches = Math.ceil(scenes.length / BATCH);
  const pixels = Array.from({ length: batches }, () => new Float32Array(size));
  // What the workers are sent: the decoded bytes (they scale them to [0, 1] themselves).
  const bytes = Array.from({ length: batches }, () => new Uint8Array(size));
  for (let i = 0; i < batches * BATCH; i++) {
    const { image } = await decodeLetterboxed(scenes[i % scenes.length], S);
    const [b, at] = [Math.floor(i / BATCH), (i % BATCH) * S * S * 3];
    toFloat32(image, pixels[b], at);
    bytes[b].set(image.data, at);
  }
  const points = makePoints(det.config, S);
  // Each pass also notes the process CPU per image (this thread and the
  // workers; the process does nothing else meanwhile).
  const cpuPerImage: Record<string | number, number[]> = { main: [], ...Object.fromEntries(CONFIGS.map((w) => [w, []])) };
  const onThisThread = async (images: number): Promise<number> => {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (let done = 0, b = 0; done < images; done += BATCH, b = (b + 1) % batches) {
      const x = tf.tensor4d(pixels[b], [BATCH, S, S, 3]);
      const out = forward(det, x);
      x.dispose();
      await postprocess(out, points, S, det.config.inference);
      disposeOutput(out);
    }
    const s = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const n = Math.ceil(images / BATCH) * BATCH;
    cpuPerImage.main.push((cpu.user + cpu.system) / 1000 / n);
    return n / s;
  };
  // As inferImages drives the pool: W + 1 batches in flight, each copied
  // (as bytes) into a recycled buffer here while the workers compute.
  const pools = new Map<number, InferencePool>();
  const inWorkers = async (workers: number, images: number): Promise<number> => {
    let pool = pools.get(workers);
    if (!pool) pools.set(workers, (pool = await InferencePool.start(det, workers)));
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const window: Promise<unknown>[] = [];
    for (let done = 0, b = 0; done < images; done += BATCH, b = (b + 1) % batches) {
      if (window.length > workers) await window.shift();
      const buf = pool.take(size);
      buf.set(bytes[b]);
      window.push(pool.predict(buf, BATCH));
    }
    await Promise.all(window);
    const s = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const n = Math.ceil(images / BATCH) * BATCH;
    cpuPerImage[workers].push((cpu.user + cpu.system) / 1000 / n);
    return n / s;
  };
  await onThisThread(BATCH * 3); // warm-up: kernels compiled, caches filled
  for (const w of CONFIGS) await inWorkers(w, BATCH * 3 * w);
  for (const k of Object.keys(cpuPerImage)) cpuPerImage[k].length = 0;

  const endToEnd = (n: number, workers: number): RunStats => {
    const dir = path.join(work, `images-${n}`);
    populate(dir, scenes, n);
    const stats = path.join(work, `stats-${n}.json`);
    run(['pseudo-label', path.join(dir, '*'), '--root', dir, '--model', ckpt, '--out', path.join(work, `pl-${n}.jsonl`),
      '--overwrite', '--quiet', '--batch', String(BATCH), '--workers', String(workers), '--stats', stats, '--backend', backendName],
      `casl pseudo-label --workers ${workers} over ${n} images`);
    rmSync(dir, { recursive: true });
    return JSON.parse(readFileSync(stats, 'utf8')) as RunStats;
  };

  // 40 batches a pass give a steady rate after the warm-up.
  const ceilingImages = Math.min(small, 40 * BATCH);
  const ceiling: Record<string | number, number> = { main: await onThisThread(ceilingImages) };
  const e2e: Record<number, RunStats> = {};
  for (const w of CONFIGS) {
    log(`S = ${S}, ${w} worker(s): model alone on ${ceilingImages} images, end to end on ${small}, model alone again`);
    const before = await inWorkers(w, ceilingImages);
    e2e[w] = endToEnd(small, w);
    ceiling[w] = Math.max(before, await inWorkers(w, ceilingImages));
    await pools.get(w)!.close();
  }
  ceiling.main = Math.max(ceiling.main, await onThisThread(ceilingImages));
  const modelCpu = Object.fromEntries(Object.entries(cpuPerImage).map(([k, v]) => [k, Math.min(...v)]));
  let big: RunStats | undefined;
  if (large !== null) {
    log(`S = ${S}: end to end on ${large} images, ${WORKERS} worker(s)`);
    big = endToEnd(large, WORKERS);
  }
  return { S, e2e, ceiling, modelCpu, big };
}

/** CPU ms an image of an end-to-end run (every thread of the child). */
const e2eCpu = (r: RunStats) => (r.cpu_s * 1000) / (r.kept + r.dropped + r.errors);
const fastest = (m: Measured) => Math.max(...Object.values(m.ceiling));
const bestVsFastest = (m: Measured) => Math.max(...CONFIGS.map((w) => m.e2e[w].images_per_s)) / fastest(m);

/** The table rows of one measured model. */
function rows(m: Measured, what: string, small: number): (string | number)[][] {
  return [
    ...CONFIGS.flatMap((w) => [
      [`${what}, ${w} worker(s): end to end, ${small} images (images/s)`, m.e2e[w].images_per_s],
      [`${what}, ${w} worker(s): model only, B = ${BATCH} (images/s)`, m.ceiling[w]],
      [`${what}, ${w} worker(s): efficiency`, m.e2e[w].images_per_s / m.ceiling[w]],
      [`${what}, ${w} worker(s): share of the end-to-end run the workers computed`, m.e2e[w].worker_busy_fraction],
      [`${what}, ${w} worker(s): CPU ms per image, model only / end to end`, `${m.modelCpu[w].toFixed(2)} / ${e2eCpu(m.e2e[w]).toFixed(2)}`],
    ]),
    [`${what}: model only on this thread (images/s)`, m.ceiling.main],
    [`${what}: best end to end vs the fastest model only`, bestVsFastest(m)],
  ];
}

export const benchmark: Benchmark = {
  name: 'pseudo-labels',
  summary: 'pseudo-labeling end to end vs the model alone (same batch, same backend), and memory at 2k and 20k images',
  async run(opts) {
    const small = opts.quick ? 200 : 2000;
    const large = opts.quick ? 400 : 20000;
    const work = mkdtempSync(path.join(tmpdir(), 'casl-bench-pl-'));
    try {
      const info = await initBackend(opts.backend, { log: opts.log });
      const backend = describeBackend(info);
      opts.log(`making ${DISTINCT} fixture scenes`);
      run(['fixtures', '--out', path.join(work, 'fx'), '--seed', '5', '--labeled', '0', '--unlabeled', String(DISTINCT), '--val', '0', '--no-entities', '--quiet'], 'casl fixtures');
      const sceneDir = path.join(work, 'fx', 'images', 'unlabeled');
      const scenes = readdirSync(sceneDir).sort().map((f) => path.join(sceneDir, f));

      // The job's labeler: the one `make pseudo-labels` uses on a fresh clone.
      const job = loadDetector(LABELER).det;
      opts.log(`the committed labeler (${path.relative(PROJECT_ROOT, LABELER)}, S = ${job.config.inputSize})`);
      const m = await measure(job, LABELER, scenes, work, info.name, small, large, opts.log);
      disposeDetector(job);

      // The reference tiny-fcos at S = 128 (parity weights when ../shared has
      // them, else seeded): a model four times cheaper an image, so the
      // non-model work weighs four times more; earlier sessions' figures.
      const ref = createDetector(TINY_FCOS, { seed: 1 });
      if (existsSync(PARITY)) loadTorchWeights(ref, PARITY);
      const refCkpt = path.join(work, 'tiny-fcos-128');
      await saveCheckpoint(refCkpt, ref, { classNames: ['object'], stage: 'labeler', step: 0 });
      const r = await measure(ref, refCkpt, scenes, work, info.name, small, null, opts.log);
      disposeDetector(ref);

      const e1 = m.e2e[WORKERS];
      const big = m.big!;
      const figures: Record<string, number | string> = {
        backend,
        batch: BATCH,
        workers: WORKERS,
        size: m.S,
        end_to_end_images_per_s: e1.images_per_s,
        model_only_images_per_s: m.ceiling[WORKERS],
        efficiency: e1.images_per_s / m.ceiling[WORKERS],
        worker_busy_fraction: e1.worker_busy_fraction,
        model_only_cpu_ms_per_image: m.modelCpu[WORKERS],
        end_to_end_cpu_ms_per_image: e2eCpu(e1),
        cpu_efficiency: m.modelCpu[WORKERS] / e2eCpu(e1),
        rss_mb_2k: e1.peak_rss_mb,
        rss_mb_20k: big.peak_rss_mb,
        tensors_2k: e1.tensors,
        tensors_20k: big.tensors,
        end_to_end_images_per_s_20k: big.images_per_s,
        model_only_images_per_s_this_thread: m.ceiling.main,
        model_only_images_per_s_fastest: fastest(m),
        efficiency_vs_fastest: bestVsFastest(m),
      };
      for (const w of CONFIGS.filter((w) => w !== WORKERS)) {
        figures[`end_to_end_images_per_s_${w}_workers`] = m.e2e[w].images_per_s;
        figures[`model_only_images_per_s_${w}_workers`] = m.ceiling[w];
        figures[`efficiency_${w}_workers`] = m.e2e[w].images_per_s / m.ceiling[w];
        figures[`worker_busy_fraction_${w}_workers`] = m.e2e[w].worker_busy_fraction;
      }
      // The S = 128 reference model, prefixed s128_.
      for (const w of CONFIGS) {
        figures[`s128_end_to_end_images_per_s_${w}_workers`] = r.e2e[w].images_per_s;
        figures[`s128_model_only_images_per_s_${w}_workers`] = r.ceiling[w];
        figures[`s128_efficiency_${w}_workers`] = r.e2e[w].images_per_s / r.ceiling[w];
        figures[`s128_cpu_efficiency_${w}_workers`] = r.modelCpu[w] / e2eCpu(r.e2e[w]);
      }
      figures.s128_model_only_images_per_s_this_thread = r.ceiling.main;
      figures.s128_efficiency_vs_fastest = bestVsFastest(r);
      const job128 = `tiny-fcos S = ${r.S} (reference)`;
      const jobName = `labeler S = ${m.S}`;
      return {
        figures,
        table: [
          ['figure', 'value'],
          ['backend (this thread; each worker: one wasm thread)', backend],
          ...rows(m, jobName, small),
          [`${jobName}, ${WORKERS} worker(s): end to end, ${large} images (images/s)`, big.images_per_s],
          [`${jobName}: peak RSS at ${small} / ${large} images (MB)`, `${e1.peak_rss_mb.toFixed(0)} / ${big.peak_rss_mb.toFixed(0)}`],
          [`${jobName}: live tensors at the end, ${small} / ${large}`, `${e1.tensors} / ${big.tensors}`],
          ...rows(r, job128, small),
        ],
        notes: [
          `${jobName}: ${path.relative(PROJECT_ROOT, LABELER)}, the labeler make pseudo-labels uses on a fresh clone; ${job128}: ${existsSync(PARITY) ? 'the parity weights' : 'seeded weights (no ../shared parity weights)'}.`,
          `model only: the better of two passes over ${Math.min(small, 40 * BATCH)} images per configuration, just before and just after its end-to-end run.`,
          `load average at the end: ${os.loadavg().map((x) => x.toFixed(2)).join(', ')}`,
        ],
      };
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  },
};
