// casl bench pseudo-labels: end-to-end pseudo-labeling throughput against
// the model alone, and memory at 2,000 and 20,000 images.
//
// The images are fixture scenes (casl fixtures, 200 distinct unlabeled
// images, hard-linked under new names up to the count needed), so decoding
// and inference see the data `make pseudo-labels` sees. The labeler is
// tiny-fcos with the parity weights when ../shared has them (a trained
// model, so post-processing sees realistic numbers of candidates), else a
// seeded fresh one.
//
//   end_to_end   `casl pseudo-label --workers W` in a child process over
//                2,000 files: ingest, decode, batched inference in W worker
//                threads, δ filter, writing; for W = 1 (the default) and 2
//   model_only   forward + post-processing on pre-decoded batches of the
//                same size, through the same W workers (one-thread wasm
//                each), kept busy: the ceiling of that configuration. They
//                get the decoded bytes and scale them to float32 as in the
//                end-to-end run. Also on this thread with its own thread
//                count (CASL_THREADS), the path without workers, so the
//                fastest model-only way of this machine is known too
//   memory       the child's peak RSS and live tensor count at the end
//                (main thread plus workers), over 2,000 and 20,000 files
import { spawnSync } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { Benchmark } from './benchmark.js';
import { PROJECT_ROOT } from '../src/cli/options.js';
import { describeBackend, initBackend } from '../src/model/backend/index.js';
import { createDetector, loadTorchWeights, makePoints, postprocess, forward, disposeOutput, saveCheckpoint, TINY_FCOS } from '../src/model/index.js';
import { decodeLetterboxed, toFloat32 } from '../src/io/decode.js';
import { InferencePool } from '../src/label/infer-pool.js';

const CASL = path.join(PROJECT_ROOT, 'bin', 'casl.js');
const PARITY = path.resolve(PROJECT_ROOT, '..', 'shared', 'parity', 'tiny-fcos-k1');
const DISTINCT = 200;
const BATCH = 16;
/** The default of pipelines/pseudo-labels.yaml, measured end to end at 2,000 and 20,000 images. */
const WORKERS = 1;

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

      const det = createDetector(TINY_FCOS, { seed: 1 });
      if (existsSync(PARITY)) loadTorchWeights(det, PARITY);
      const ckpt = path.join(work, 'labeler');
      await saveCheckpoint(ckpt, det, { classNames: ['object'], stage: 'labeler', step: 0 });

      // The ceiling: batches of already letterboxed images, forward + post-processing.
      const S = det.config.inputSize;
      const pixels = new Float32Array(BATCH * S * S * 3);
      // What the workers are sent: the decoded bytes (they scale them to [0, 1] themselves).
      const bytes = new Uint8Array(BATCH * S * S * 3);
      for (let b = 0; b < BATCH; b++) {
        const { image } = await decodeLetterboxed(scenes[b], S);
        toFloat32(image, pixels, b * S * S * 3);
        bytes.set(image.data, b * S * S * 3);
      }
      const points = makePoints(det.config, S);
      // Each pass also notes the process CPU per image (this thread and the
      // workers; the process does nothing else meanwhile).
      const cpuPerImage: Record<string | number, number[]> = { main: [], [WORKERS]: [], 2: [] };
      const onThisThread = async (images: number): Promise<number> => {
        const x = tf.tensor4d(pixels, [BATCH, S, S, 3]);
        const cpu0 = process.cpuUsage();
        const t0 = performance.now();
        for (let done = 0; done < images; done += BATCH) {
          const out = forward(det, x);
          await postprocess(out, points, S, det.config.inference);
          disposeOutput(out);
        }
        const s = (performance.now() - t0) / 1000;
        const cpu = process.cpuUsage(cpu0);
        x.dispose();
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
        for (let done = 0; done < images; done += BATCH) {
          if (window.length > workers) await window.shift();
          const buf = pool.take(bytes.length);
          buf.set(bytes);
          window.push(pool.predict(buf, BATCH));
        }
        await Promise.all(window);
        const s = (performance.now() - t0) / 1000;
        const cpu = process.cpuUsage(cpu0);
        const n = Math.ceil(images / BATCH) * BATCH;
        cpuPerImage[workers].push((cpu.user + cpu.system) / 1000 / n);
        return n / s;
      };
      const CONFIGS = [WORKERS, 2];
      await onThisThread(BATCH * 3); // warm-up: kernels compiled, caches filled
      for (const w of CONFIGS) await inWorkers(w, BATCH * 3 * w);
      for (const k of Object.keys(cpuPerImage)) cpuPerImage[k].length = 0;

      const endToEnd = (n: number, workers: number): RunStats => {
        const dir = path.join(work, `images-${n}`);
        populate(dir, scenes, n);
        const stats = path.join(work, `stats-${n}.json`);
        run(['pseudo-label', path.join(dir, '*'), '--root', dir, '--model', ckpt, '--out', path.join(work, `pl-${n}.jsonl`),
          '--overwrite', '--quiet', '--batch', String(BATCH), '--workers', String(workers), '--stats', stats, '--backend', info.name],
          `casl pseudo-label --workers ${workers} over ${n} images`);
        rmSync(dir, { recursive: true });
        return JSON.parse(readFileSync(stats, 'utf8')) as RunStats;
      };

      // Each end-to-end run sits between two model-only passes of its own
      // configuration, so that the machine's load, which drifts over minutes
      // on the shared machine, falls on both alike; the better pass is the
      // ceiling. 40 batches a pass give a steady rate after the warm-up.
      const ceilingImages = Math.min(small, 40 * BATCH);
      const ceiling: Record<string | number, number> = { main: await onThisThread(ceilingImages) };
      const e2e: Record<number, RunStats> = {};
      for (const w of CONFIGS) {
        opts.log(`${w} worker(s): model alone on ${ceilingImages} images, end to end on ${small}, model alone again`);
        const before = await inWorkers(w, ceilingImages);
        e2e[w] = endToEnd(small, w);
        ceiling[w] = Math.max(before, await inWorkers(w, ceilingImages));
        await pools.get(w)!.close();
      }
      ceiling.main = Math.max(ceiling.main, await onThisThread(ceilingImages));
      const best = (k: string | number) => ceiling[k];
      opts.log(`end to end on ${large} images, ${WORKERS} worker(s)`);
      const big = endToEnd(large, WORKERS);
      const e1 = e2e[WORKERS];
      const fastest = Math.max(...Object.values(ceiling));
      // CPU per image: the least of the model-only passes, against the end-to-end run's (every thread of the child).
      const modelCpu = (k: string | number) => Math.min(...cpuPerImage[k]);
      const e2eCpu = (r: RunStats) => (r.cpu_s * 1000) / (r.kept + r.dropped + r.errors);
      const figures: Record<string, number | string> = {
        backend,
        batch: BATCH,
        workers: WORKERS,
        end_to_end_images_per_s: e1.images_per_s,
        model_only_images_per_s: best(WORKERS),
        efficiency: e1.images_per_s / best(WORKERS),
        worker_busy_fraction: e1.worker_busy_fraction,
        model_only_cpu_ms_per_image: modelCpu(WORKERS),
        end_to_end_cpu_ms_per_image: e2eCpu(e1),
        cpu_efficiency: modelCpu(WORKERS) / e2eCpu(e1),
        rss_mb_2k: e1.peak_rss_mb,
        rss_mb_20k: big.peak_rss_mb,
        tensors_2k: e1.tensors,
        tensors_20k: big.tensors,
        end_to_end_images_per_s_20k: big.images_per_s,
        model_only_images_per_s_this_thread: best('main'),
        model_only_images_per_s_fastest: fastest,
        efficiency_vs_fastest: Math.max(...CONFIGS.map((w) => e2e[w].images_per_s)) / fastest,
      };
      for (const w of CONFIGS.filter((w) => w !== WORKERS)) {
        figures[`end_to_end_images_per_s_${w}_workers`] = e2e[w].images_per_s;
        figures[`model_only_images_per_s_${w}_workers`] = best(w);
        figures[`efficiency_${w}_workers`] = e2e[w].images_per_s / best(w);
        figures[`worker_busy_fraction_${w}_workers`] = e2e[w].worker_busy_fraction;
      }
      return {
        figures,
        table: [
          ['figure', 'value'],
          ['backend (this thread; each worker: one wasm thread)', backend],
          ...CONFIGS.flatMap((w) => [
            [`${w} worker(s): end to end, ${small} images (images/s)`, e2e[w].images_per_s],
            [`${w} worker(s): model only, B = ${BATCH} (images/s)`, best(w)],
            [`${w} worker(s): efficiency`, e2e[w].images_per_s / best(w)],
            [`${w} worker(s): share of the end-to-end run the workers computed`, e2e[w].worker_busy_fraction],
            [`${w} worker(s): CPU ms per image, model only / end to end`, `${modelCpu(w).toFixed(2)} / ${e2eCpu(e2e[w]).toFixed(2)}`],
          ]),
          [`model only on this thread (images/s)`, best('main')],
          [`efficiency of the best end to end vs the fastest model only`, figures.efficiency_vs_fastest],
          [`${WORKERS} worker(s): end to end, ${large} images (images/s)`, big.images_per_s],
          [`peak RSS at ${small} / ${large} images (MB)`, `${e1.peak_rss_mb.toFixed(0)} / ${big.peak_rss_mb.toFixed(0)}`],
          [`live tensors at the end, ${small} / ${large}`, `${e1.tensors} / ${big.tensors}`],
        ],
        notes: [
          `model only: the better of two passes over ${ceilingImages} images per configuration, just before and just after its end-to-end run.`,
          `load average at the end: ${os.loadavg().map((x) => x.toFixed(2)).join(', ')}`,
        ],
      };
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  },
};
