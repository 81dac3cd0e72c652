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
//   end_to_end   `casl pseudo-label` in a child process over 2,000 files:
//                ingest, decode, batched inference, δ filter, writing
//   model_only   forward + post-processing on pre-decoded batches of the
//                same size in this process: the ceiling
//   memory       the child's peak RSS and live tensor count at the end,
//                over 2,000 and over 20,000 files
import { spawnSync } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { Benchmark } from './benchmark.js';
import { PROJECT_ROOT } from '../src/cli/options.js';
import { describeBackend, initBackend } from '../src/model/backend/index.js';
import { createDetector, loadTorchWeights, makePoints, postprocess, forward, disposeOutput, saveCheckpoint, TINY_FCOS } from '../src/model/index.js';
import { decodeLetterboxed, toFloat32 } from '../src/io/decode.js';

const CASL = path.join(PROJECT_ROOT, 'bin', 'casl.js');
const PARITY = path.resolve(PROJECT_ROOT, '..', 'shared', 'parity', 'tiny-fcos-k1');
const DISTINCT = 200;
const BATCH = 16;

interface RunStats {
  seconds: number;
  images_per_s: number;
  peak_rss_mb: number;
  tensors: number;
  kept: number;
  dropped: number;
  errors: number;
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
      for (let b = 0; b < BATCH; b++) toFloat32((await decodeLetterboxed(scenes[b], S)).image, pixels, b * S * S * 3);
      const points = makePoints(det.config, S);
      const modelOnly = async (images: number): Promise<number> => {
        const x = tf.tensor4d(pixels, [BATCH, S, S, 3]);
        const t0 = performance.now();
        for (let done = 0; done < images; done += BATCH) {
          const out = forward(det, x);
          await postprocess(out, points, S, det.config.inference);
          disposeOutput(out);
        }
        const s = (performance.now() - t0) / 1000;
        x.dispose();
        return Math.ceil(images / BATCH) * BATCH / s;
      };
      await modelOnly(BATCH * 3); // warm-up: kernels compiled, caches filled

      const endToEnd = (n: number): RunStats => {
        const dir = path.join(work, `images-${n}`);
        populate(dir, scenes, n);
        const stats = path.join(work, `stats-${n}.json`);
        run(['pseudo-label', path.join(dir, '*'), '--root', dir, '--model', ckpt, '--out', path.join(work, `pl-${n}.jsonl`),
          '--overwrite', '--quiet', '--batch', String(BATCH), '--stats', stats, '--backend', info.name], `casl pseudo-label over ${n} images`);
        rmSync(dir, { recursive: true });
        return JSON.parse(readFileSync(stats, 'utf8')) as RunStats;
      };

      // Interleaved, so the machine's load falls on both alike.
      opts.log(`model alone on ${small} images`);
      const m1 = await modelOnly(small);
      opts.log(`end to end on ${small} images`);
      const e1 = endToEnd(small);
      const m2 = await modelOnly(small);
      opts.log(`end to end on ${large} images`);
      const e2 = endToEnd(large);
      const model = Math.max(m1, m2);
      const figures = {
        backend,
        batch: BATCH,
        end_to_end_images_per_s: e1.images_per_s,
        model_only_images_per_s: model,
        efficiency: e1.images_per_s / model,
        rss_mb_2k: e1.peak_rss_mb,
        rss_mb_20k: e2.peak_rss_mb,
        tensors_2k: e1.tensors,
        tensors_20k: e2.tensors,
        end_to_end_images_per_s_20k: e2.images_per_s,
      };
      return {
        figures,
        table: [
          ['figure', 'value'],
          ['backend', backend],
          [`end to end, ${small} images (images/s)`, e1.images_per_s],
          [`end to end, ${large} images (images/s)`, e2.images_per_s],
          [`model only, B = ${BATCH} (images/s)`, model],
          ['efficiency (end to end / model only)', figures.efficiency],
          [`peak RSS at ${small} images (MB)`, e1.peak_rss_mb],
          [`peak RSS at ${large} images (MB)`, e2.peak_rss_mb],
          [`live tensors at the end, ${small} / ${large}`, `${e1.tensors} / ${e2.tensors}`],
        ],
        notes: [`model only: the better of two passes over ${small} images, interleaved with the end-to-end runs.`],
      };
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  },
};
