// The pseudo-labeling dataflow, assembled from the stages the commands share:
//
//   image records → decodeImages → inferImages → (δ filter) → ledger files
//
// `casl infer` and `casl pseudo-label` both use `loadLabeler` and
// `predictImages`, so a shell pipe of stages and the one-process command
// run the same operators and give the same records.
import { createWriteStream, type WriteStream } from 'node:fs';
import _ from 'highland';
import type { ErrorRecord, ImageRecord, PredictionRecord } from '../records.js';
import { isErrorRecord } from '../records.js';
import { CanvasPool, decodeImages } from '../io/decode.js';
import { type Detector, loadDetector } from '../model/index.js';
import { describeBackend, initBackend } from '../model/backend/index.js';
import type { PolicyName } from '../augment/policy.js';
import { type OrError, type Stage, type Stream } from '../streams/index.js';
import { inferImages, poolCanRun } from './infer.js';
import { InferencePool } from './infer-pool.js';
import { FilterStats, filterByScore } from './filter.js';
import type { LedgerPaths } from './ledger.js';
import { UsageError } from '../cli/command.js';

export interface Labeler {
  det: Detector;
  /** sha256 of the weights, from the checkpoint. */
  modelHash: string;
  backend: string;
  categoryIds: number[];
  /** The inference workers, when the model runs in them (see loadLabeler). */
  pool?: InferencePool;
  /** Ends the workers. */
  close(): Promise<void>;
}

/**
 * Chooses the backend, loads the checkpoint in `dir`, and with `workers` > 0
 * starts that many inference workers with its weights (before any image is
 * read, like the weights themselves). The workers need the wasm backend and
 * a box model; otherwise the model runs on this thread, and the log says so.
 */
export async function loadLabeler(dir: string, backend: string | undefined, log: (line: string) => void, workers = 0): Promise<Labeler> {
  const info = await initBackend(backend, { log });
  const { det, ckpt } = loadDetector(dir);
  const K = ckpt.manifest.numClasses;
  const categoryIds = (ckpt.manifest as { categoryIds?: number[] }).categoryIds ?? Array.from({ length: K }, (_, k) => k + 1);
  let pool: InferencePool | undefined;
  if (workers > 0 && poolCanRun(det)) pool = await InferencePool.start(det, workers);
  else if (workers > 0) log(`casl: inference on the main thread: --workers needs the wasm backend and a box model (this is ${describeBackend(info)}${det.config.mask ? ', a CondInst model' : ''})`);
  return {
    det, modelHash: ckpt.manifest.weightsSha256, backend: describeBackend(info), categoryIds, pool,
    close: async () => pool?.close(),
  };
}

export interface PredictOptions {
  root: string;
  aug: PolicyName;
  views: number;
  batch: number;
  seed: number;
  decodeConcurrency: number;
  maxPixels?: number;
  /** See InferOptions.minScore. */
  minScore?: number;
  /** Inference worker threads for loadLabeler; 0 runs the model on the main thread. */
  workers: number;
}

/** Image records → prediction records in original-image pixels; bad images become error records. */
export function predictImages(labeler: Labeler, opts: PredictOptions): Stage<OrError<ImageRecord>, OrError<PredictionRecord>> {
  const S = labeler.det.config.inputSize;
  // Without test-time views the decoder letterboxes in one sharp pipeline
  // (the fast path); views are resampled from the full-resolution image.
  const fastPath = opts.aug === 'none' && opts.views === 1;
  // The letterboxed canvases circulate between the decoder and the batches.
  const canvases = fastPath ? new CanvasPool() : undefined;
  return (s) => s
    .through(decodeImages({ root: opts.root, size: fastPath ? S : undefined, concurrency: opts.decodeConcurrency, maxPixels: opts.maxPixels, canvases }))
    .through(inferImages({
      detector: labeler.det,
      batchSize: opts.batch,
      aug: opts.aug,
      views: opts.views,
      seed: opts.seed,
      minScore: opts.minScore,
      pool: labeler.pool,
      canvases,
      categoryIds: labeler.categoryIds,
      meta: { model: labeler.modelHash, backend: labeler.backend },
    }));
}

/** What a pseudo-labeling run wrote. */
export interface LedgerCounts {
  kept: number;
  dropped: number;
  errors: number;
}

function open(file: string, append: boolean): WriteStream {
  return createWriteStream(file, { flags: append ? 'a' : 'w' });
}

function closeAll(streams: WriteStream[]): Promise<void> {
  return Promise.all(streams.map((w) => new Promise<void>((resolve, reject) => {
    w.once('error', reject);
    w.end(() => resolve());
  }))).then(() => undefined);
}

/**
 * Predictions (and error records) → the three ledger files: each image in
 * exactly one line of one file. The δ filter runs here so that an image it
 * drops is written to `dropped` instead of vanishing. Waits for each file to
 * drain before taking the next record (backpressure to the model and the
 * decoder), and resolves once all three are flushed and closed.
 */
export function writeLedger(
  paths: LedgerPaths,
  opts: { delta: number; append: boolean; stats: FilterStats; onError?: (e: ErrorRecord) => void },
): (s: Stream<OrError<PredictionRecord>>) => Promise<LedgerCounts> {
  return (s) => new Promise<LedgerCounts>((resolve, reject) => {
    const out = open(paths.out, opts.append);
    const dropped = open(paths.dropped, opts.append);
    const errors = open(paths.errors, opts.append);
    const files = [out, dropped, errors];
    const counts: LedgerCounts = { kept: 0, dropped: 0, errors: 0 };
    let failed = false;
    const fail = (e: unknown) => {
      if (failed) return;
      failed = true;
      s.destroy();
      for (const f of files) f.destroy();
      reject(e);
    };
    for (const f of files) f.on('error', fail);
    s.consume<never>((err, x, _push, next) => {
      if (failed) return;
      if (err) return fail(err);
      if (_.isNil(x)) {
        closeAll(files).then(() => resolve(counts), fail);
        return;
      }
      let dest: WriteStream;
      let line: string;
      if (isErrorRecord(x)) {
        counts.errors += 1;
        opts.onError?.(x);
        dest = errors;
        line = JSON.stringify(x);
      } else {
        const kept = filterByScore(x, opts.delta);
        opts.stats.add(x, kept);
        if (kept) {
          counts.kept += 1;
          dest = out;
          line = JSON.stringify(kept);
        } else {
          counts.dropped += 1;
          dest = dropped;
          line = JSON.stringify({ image_id: x.image_id, file_name: x.file_name, width: x.width, height: x.height });
        }
      }
      if (dest.write(line + '\n')) next();
      else dest.once('drain', next);
    }).resume();
  });
}

/**
 * Ends the stream early once `stopped()` turns true (SIGINT): the records
 * already taken finish their way through decoding, the batch in flight and
 * the writers; nothing new is taken from the source.
 */
export function stopWhen<T>(stopped: () => boolean): Stage<T, T> {
  return (s) => s.consume<T>((err, x, push, next) => {
    if (err) {
      push(err);
      next();
    } else if (_.isNil(x) || stopped()) {
      push(null, _.nil);
    } else {
      push(null, x);
      next();
    }
  });
}

/** The prediction flags shared by `casl infer` and `casl pseudo-label`, checked. */
export interface PredictionFlags {
  root: string;
  aug?: string;
  views?: number;
  batch?: number;
  seed?: number;
  'decode-concurrency'?: number;
  'max-pixels'?: number;
  workers?: number;
}

export function predictionOptions(f: PredictionFlags): PredictOptions {
  const need = <T>(v: T | undefined, key: string): T => {
    if (v === undefined) throw new UsageError(`--${key} has no value: set it with the flag or in the pipeline YAML`);
    return v;
  };
  const aug = need(f.aug, 'aug') as PolicyName;
  const views = need(f.views, 'views');
  const batch = need(f.batch, 'batch');
  if (views < 1) throw new UsageError(`--views must be at least 1, got ${views}`);
  if (aug === 'none' && views > 1) throw new UsageError('--views > 1 needs --aug weak or strong: with none, every view would be the same');
  if (batch < 1) throw new UsageError(`--batch must be at least 1, got ${batch}`);
  const decodeConcurrency = need(f['decode-concurrency'], 'decode-concurrency');
  if (decodeConcurrency < 1) throw new UsageError(`--decode-concurrency must be at least 1, got ${decodeConcurrency}`);
  const workers = need(f.workers, 'workers');
  if (!Number.isInteger(workers) || workers < 0) throw new UsageError(`--workers must be 0 (the model on the main thread) or more, got ${workers}`);
  return { root: f.root, aug, views, batch, seed: need(f.seed, 'seed'), decodeConcurrency, maxPixels: f['max-pixels'], workers };
}
