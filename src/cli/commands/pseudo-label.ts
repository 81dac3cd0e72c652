import { existsSync, writeFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import type { Command } from '../command.js';
import { UsageError } from '../command.js';
import { ingestRecords, listImages, parseShard } from '../../io/ingest.js';
import { loadCoco } from '../../io/coco.js';
import { progress } from '../../streams/index.js';
import { isErrorRecord } from '../../records.js';
import { PREDICTION_OPTIONS } from './infer.js';
import { FilterStats } from '../../label/filter.js';
import { ledgerPaths, resumeLedger } from '../../label/ledger.js';
import { loadLabeler, predictImages, predictionOptions, stopWhen, writeLedger, type PredictionFlags } from '../../label/pipeline.js';
import { formatQuality, pseudoLabelQuality } from '../../label/quality.js';
import { writeCocoResults } from '../../label/coco-results.js';
import { poolBackendName } from '../../label/infer.js';

export const command: Command = {
  name: 'pseudo-label',
  summary: 'ingest → decode → infer → δ filter → JSONL in one process; resumable after a crash, shardable across machines',
  usage: 'casl pseudo-label <glob|dir...> --root DIR --model CKPT --out FILE [--delta δ] [--resume] [--shard i/N] [--gt HIDDEN_GT.json]',
  example: "casl pseudo-label 'data/fixtures/images/unlabeled/*' --root data/fixtures/images/unlabeled --model runs/labeler/model --out runs/pseudo-labels/pseudo.jsonl --resume",
  pipeline: 'pseudo-labels',
  options: {
    ...PREDICTION_OPTIONS,
    root: { type: 'string', help: 'file_name in the output is relative to this directory (ids derive from it)', default: '.' },
    out: { type: 'string', help: 'kept pseudo labels (JSONL); OUT.dropped and OUT.errors are written beside it' },
    delta: { type: 'number', help: 'keep instances scoring strictly above δ; images left empty go to OUT.dropped' },
    resume: { type: 'boolean', help: 'continue a run that was stopped: images already in OUT, OUT.dropped or OUT.errors are not redone', default: false },
    overwrite: { type: 'boolean', help: 'start over, replacing OUT and its companions', default: false },
    shard: { type: 'string', help: 'process shard i of N (0-based; image_id mod N = i): N machines, outputs concatenate' },
    gt: { type: 'string', help: 'COCO ground truth of these images (e.g. the fixtures\' hidden one): print precision and recall' },
    stats: { type: 'string', help: 'write the run\'s figures here as JSON (counts, filter histograms, quality, seconds, peak RSS, live tensors)' },
    'coco-results': { type: 'string', help: 'after the run, also write OUT\'s instances here as one pycocotools results array (loadRes reads it as is: segm with masks, else bbox), made again from the whole of OUT on every run' },
    errors: { type: 'string', help: 'error records go here instead of OUT.errors' },
    quiet: { type: 'boolean', help: 'no progress on stderr', default: false },
  },
  async run(opts, positionals, ctx) {
    if (positionals.length === 0) throw new UsageError(`name the unlabeled images (globs or directories), e.g. ${command.example}`);
    if (!opts.model) throw new UsageError('--model is required: the labeler checkpoint directory (make labeler writes runs/labeler/model)');
    if (!opts.out) throw new UsageError('--out is required: the JSONL file the pseudo labels go to');
    const delta = opts.delta as number | undefined;
    if (delta === undefined || !(delta >= 0 && delta < 1)) throw new UsageError(`--delta must be in [0, 1), got ${delta ?? 'nothing'}`);
    const paths = ledgerPaths(opts.out as string, opts.errors as string | undefined);
    const resume = opts.resume as boolean;
    if (!resume && !opts.overwrite && [paths.out, paths.dropped, paths.errors].some((f) => existsSync(f))) {
      throw new UsageError(`${paths.out} (or its .dropped/.errors) exists: --resume to finish that run, or --overwrite to start over`);
    }
    const popts = { ...predictionOptions(opts as unknown as PredictionFlags), minScore: delta };
    const shard = opts.shard === undefined ? undefined : parseShard(opts.shard as string);
    const log = (line: string) => ctx.stderr.write(line + '\n');
    const gt = opts.gt ? loadCoco(opts.gt as string) : undefined;

    const { done, repairedBytes } = resume ? await resumeLedger(paths) : { done: new Set<number>(), repairedBytes: 0 };
    if (resume) log(`casl pseudo-label: resuming: ${done.size} images already accounted for${repairedBytes ? `, cut a torn last line (${repairedBytes} bytes)` : ''}`);

    const listing = await listImages(positionals, { root: opts.root as string });
    if (listing.files.length === 0) throw new UsageError(`no files match ${positionals.map((p) => `'${p}'`).join(' ')}; quote globs so the shell does not expand them`);
    const { total, records } = ingestRecords(listing, shard);
    const labeler = await loadLabeler(opts.model as string, opts.backend as string | undefined, log, popts.workers);
    try {
      let interrupted = false;
      const onSigint = () => {
        interrupted = true;
        log('casl pseudo-label: interrupted: finishing the images in flight, then flushing the files (Ctrl-C again to kill)');
        process.removeListener('SIGINT', onSigint);
      };
      process.on('SIGINT', onSigint);

      const todo = total - done.size;
      const p = progress('pseudo-label', { total: Math.max(0, todo), quiet: opts.quiet as boolean, stderr: ctx.stderr });
      const stats = new FilterStats(delta);
      let counts;
      const started = performance.now();
      const cpuAtStart = process.cpuUsage();
      try {
        counts = await records
          .filter((r) => isErrorRecord(r) || !done.has(r.image_id))
          .through(stopWhen(() => interrupted))
          .through(predictImages(labeler, popts))
          .through(p.tap)
          .through(writeLedger(paths, { delta, append: resume, stats }));
      } finally {
        process.removeListener('SIGINT', onSigint);
        p.done();
      }
      ctx.stderr.write(stats.format());
      log(`casl pseudo-label: ${total} images${shard ? ` in shard ${opts.shard}` : ''}: ${done.size} done before, now ${counts.kept} kept → ${paths.out}, `
        + `${counts.dropped} dropped as empty → ${paths.dropped}, ${counts.errors} failed → ${paths.errors}`);
      const seconds = (performance.now() - started) / 1000;
      const cpu = process.cpuUsage(cpuAtStart);
      const quality = gt ? await pseudoLabelQuality(gt, paths.out, paths.dropped) : undefined;
      if (quality) ctx.stderr.write(formatQuality(quality));
      if (opts['coco-results'] && !interrupted) {
        const c = await writeCocoResults(paths.out, opts['coco-results'] as string);
        log(`casl pseudo-label: ${c.detections} instances of ${c.images} images (${c.masks} with masks) as a pycocotools results file → ${opts['coco-results']}`);
      }
      if (opts.stats) {
        writeFileSync(opts.stats as string, JSON.stringify({
          images: total, done_before: done.size, ...counts, seconds, images_per_s: (counts.kept + counts.dropped + counts.errors) / seconds,
          // Every thread of the process: decoding (libvips and the JPEG addon on libuv's pool), this thread, the workers.
          cpu_s: (cpu.user + cpu.system) / 1e6,
          peak_rss_mb: process.resourceUsage().maxRSS / 1024,
          // Each thread has its own backend: the main thread's tensors and the inference workers' after their last batch.
          tensors: tf.memory().numTensors + (labeler.pool?.numTensors ?? 0), tensors_workers: labeler.pool?.numTensors ?? 0,
          workers: labeler.pool?.size ?? 0,
          ...(labeler.pool ? { worker_busy_fraction: labeler.pool.busyMs / 1000 / (labeler.pool.size * seconds) } : {}),
          backend: labeler.pool ? poolBackendName(labeler.pool) : labeler.backend,
          filter: stats.toJSON(), quality, interrupted,
        }, null, 2) + '\n');
      }
      if (interrupted) return 130;
      return counts.errors > 0 ? 1 : 0;
    } finally {
      await labeler.close();
    }
  },
};
