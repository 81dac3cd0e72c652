import type { Command, OptionSpec } from '../command.js';
import { UsageError } from '../command.js';
import type { ImageRecord } from '../../records.js';
import { errorSink, progress, readJsonl, routeErrors, serializeJsonl, writeTo } from '../../streams/index.js';
import { POLICIES } from '../../augment/policy.js';
import { loadLabeler, predictImages, predictionOptions, type PredictionFlags } from '../../label/pipeline.js';

/** The flags of the prediction half, shared with `casl pseudo-label`. */
export const PREDICTION_OPTIONS: Record<string, OptionSpec> = {
  model: { type: 'string', help: 'checkpoint directory (model.json + shards), e.g. runs/labeler/model' },
  root: { type: 'string', help: 'directory the records\' file_name is relative to (the --root given to casl ingest)', default: '.' },
  aug: { type: 'string', help: 'test-time views: none, or extra views drawn from the weak or strong policy', choices: POLICIES },
  views: { type: 'integer', help: 'views per image, merged by class-aware NMS; 1 = the plain letterbox only' },
  batch: { type: 'integer', help: 'views per forward pass' },
  seed: { type: 'integer', help: 'seed of the test-time views (each image\'s views depend only on it and the image_id)' },
  'decode-concurrency': { type: 'integer', help: 'images decoding at once (libvips threads)' },
  'max-pixels': { type: 'integer', help: 'refuse images with more pixels than this (decompression bombs)' },
  backend: { type: 'string', help: 'auto|tfjs-node-gpu|tfjs-node|wasm|cpu (or CASL_BACKEND)' },
  workers: { type: 'integer', help: 'wasm: inference worker threads, each with a one-thread backend, computing while this thread decodes; 0 = on this thread' },
};

export const command: Command = {
  name: 'infer',
  summary: 'image records in, prediction records out (boxes in original-image pixels), batched, with optional test-time views',
  usage: 'casl infer [IMAGES.jsonl|-] --model CKPT --root DIR [--aug none|weak|strong] [--views N] [--batch B] [--backend B]',
  example: "casl ingest 'data/fixtures/images/unlabeled/*' --root data/fixtures/images/unlabeled | casl infer --model runs/labeler/model --root data/fixtures/images/unlabeled > preds.jsonl",
  pipeline: 'infer',
  options: {
    ...PREDICTION_OPTIONS,
    errors: { type: 'string', help: 'write error records (bad images) here as JSONL instead of stderr' },
    quiet: { type: 'boolean', help: 'no progress on stderr', default: false },
  },
  async run(opts, positionals, ctx) {
    if (!opts.model) throw new UsageError('--model is required: a checkpoint directory from casl train (e.g. runs/labeler/model)');
    if (positionals.length > 1) throw new UsageError('give one input file of image records (or - for stdin)');
    const popts = predictionOptions(opts as unknown as PredictionFlags);
    const log = (line: string) => ctx.stderr.write(line + '\n');
    const labeler = await loadLabeler(opts.model as string, opts.backend as string | undefined, log, popts.workers);
    const p = progress('infer', { quiet: opts.quiet as boolean, stderr: ctx.stderr });
    const sink = errorSink({ file: opts.errors as string | undefined, stderr: ctx.stderr, command: 'infer' });
    try {
      await readJsonl<ImageRecord>(positionals[0] ?? '-', { stdin: ctx.stdin })
        .through(predictImages(labeler, popts))
        .through(p.tap)
        .through(routeErrors(sink, p.summary))
        .through(serializeJsonl())
        .through(writeTo(ctx.stdout));
    } finally {
      await Promise.all([sink.close(), labeler.close()]);
      p.done();
    }
    return p.summary.errors > 0 ? 1 : 0;
  },
};
