import path from 'node:path';
import type { Command, Options } from '../command.js';
import { UsageError } from '../command.js';
import { loadConfig, pipelineFile } from '../options.js';
import { POLICIES, type PolicyName } from '../../augment/policy.js';
import { PARTS, type Part } from '../../model/params.js';
import { progress } from '../../streams/progress.js';
import { describeBackend, initBackend } from '../../model/backend/index.js';
import { NonFiniteLossError, type StageName, type TrainOptions, lastCheckpoint, train } from '../../train/trainer.js';

const STAGES = ['labeler', 'warmup', 'finetune'] as const;

// No `pipeline`: the defaults file depends on --stage, so run() loads
// pipelines/<stage>.yaml itself, under the flags.
export const command: Command = {
  name: 'train',
  summary: 'train a stage of CA-SSL: the class-agnostic labeler, the warmup on pseudo labels, or the class-specific finetune',
  usage: 'casl train --stage labeler|warmup|finetune [--resume] [--steps N] [--out DIR] [… see pipelines/<stage>.yaml]',
  example: 'casl train --stage labeler --steps 2000 --out runs/labeler',
  options: {
    stage: { type: 'string', choices: STAGES, help: 'which stage: its defaults are pipelines/<stage>.yaml' },
    entities: { type: 'boolean', help: 'labeler and warmup: things and stuff as class-agnostic masks with tiny-condinst (defaults pipelines/<stage>-entities.yaml)' },
    train: { type: 'string', help: 'training data: COCO JSON (labeler, finetune) or pseudo-label JSONL from casl filter (warmup)' },
    root: { type: 'string', help: 'folder of the training images (file_name is relative to it)' },
    val: { type: 'string', help: 'COCO JSON of the val split, for periodic evaluation ("" for none)' },
    'val-root': { type: 'string', help: 'folder of the val images' },
    out: { type: 'string', short: 'o', help: 'run directory: metrics.jsonl, checkpoints/, model/' },
    model: { type: 'string', help: 'model preset (src/model/config.ts)' },
    size: { type: 'integer', help: 'S: input side in pixels, a multiple of 32' },
    'batch-size': { type: 'integer', help: 'B: images per step' },
    steps: { type: 'integer', help: 'length of the run in steps (0: use --epochs)' },
    epochs: { type: 'number', help: 'length of the run in passes over the training data, when --steps is 0' },
    optimizer: { type: 'string', choices: ['sgd', 'adamw'], help: 'SGD with momentum, or AdamW' },
    lr: { type: 'number', help: 'base learning rate' },
    momentum: { type: 'number', help: 'SGD momentum' },
    'weight-decay': { type: 'number', help: 'weight decay (L2 for SGD, decoupled for AdamW)' },
    schedule: { type: 'string', choices: ['constant', 'step', 'cosine'], help: 'learning-rate decay after the warm-up' },
    'warmup-steps': { type: 'integer', help: 'linear warm-up length in steps' },
    'warmup-factor': { type: 'number', help: 'learning-rate factor at step 0 of the warm-up' },
    milestones: { type: 'string', help: "'step' schedule: fractions of the run where the rate is multiplied by gamma, comma-separated" },
    gamma: { type: 'number', help: "'step' schedule: the factor at each milestone" },
    'clip-norm': { type: 'number', help: 'clip the global gradient norm to this (0: off)' },
    'eval-every': { type: 'integer', help: 'evaluate on --val every N steps (0: only at the end)' },
    'checkpoint-every': { type: 'integer', help: 'save a checkpoint every N steps (and at the end)' },
    'keep-checkpoints': { type: 'integer', help: 'older checkpoints kept besides the last' },
    seed: { type: 'integer', help: 'seed of the weights, the data order and the augmentation' },
    aug: { type: 'string', choices: POLICIES, help: 'augmentation policy of the training views' },
    prefetch: { type: 'integer', help: 'batches prepared ahead of the train step' },
    concurrency: { type: 'integer', help: 'images decoded at once' },
    resume: { type: 'boolean', help: 'continue from the last checkpoint in --out (same settings and seed)' },
    init: { type: 'string', help: 'checkpoint directory to initialise from (finetune: the warmup model)' },
    'init-parts': { type: 'string[]', help: `parts taken from --init: ${PARTS.join(', ')} (repeat the flag)` },
    'classifier-init': { type: 'string', choices: ['copy', 'random'], help: 'K-class classifier from a K = 1 one: copy its channel into all K, or keep it random' },
    'lr-scale': { type: 'string[]', help: `PART=F: the learning rate of a part (${PARTS.join(', ')}) times F; 0 freezes it (repeat the flag)` },
    backend: { type: 'string', help: 'tensor backend: auto|tfjs-node-gpu|tfjs-node|wasm|cpu (env CASL_BACKEND)' },
    'stop-at': { type: 'integer', help: 'stop after this step without finishing the run (resume later with --resume)' },
    quiet: { type: 'boolean', help: 'no progress bar' },
  },
  async run(flags, positionals, ctx) {
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}': casl train takes only options`);
    const stage = flags.stage as StageName | undefined;
    if (!stage && !ctx.configFile) throw new UsageError('choose a stage: --stage labeler|warmup|finetune');
    if (flags.entities && stage === 'finetune') {
      throw new UsageError('--entities is for the labeler and warmup stages: finetune trains on class-specific ground truth; start it from an entity warmup with --init runs/warmup-entities/model');
    }
    const file = ctx.configFile ?? pipelineFile(flags.entities ? `${stage}-entities` : stage!);
    // An explicit --config was already merged under the flags by parseArgs.
    const opts: Options = ctx.configFile ? flags : { ...loadConfig(command, file), ...flags };
    const o = toTrainOptions(opts, file);
    const info = await initBackend(o.backend === 'auto' ? undefined : o.backend, { log: (line) => ctx.stderr.write(line + '\n') });
    ctx.stderr.write(`casl train: stage ${o.stage}, ${o.train} → ${o.out}\n`);
    const p = opts.quiet ? undefined : progress(`train ${o.stage}`, { stderr: ctx.stderr });
    try {
      const s = await train({
        ...o,
        backend: describeBackend(info),
        log: (line) => ctx.stderr.write(`${p ? '\r\x1b[K' : ''}${line}\n`),
        progress: p && { setTotal: (n) => p.setTotal(n), add: () => p.add() },
      });
      p?.done();
      const ap = s.eval ? `, ${o.stage === 'finetune' ? 'AP^det' : 'AP^det-a'} ${s.eval.AP.toFixed(3)} (AP50 ${s.eval.AP50.toFixed(3)})` : '';
      ctx.stderr.write(`casl train: ${s.finished ? 'finished' : 'stopped'} at step ${s.steps}${ap}; ${s.wallSeconds.toFixed(0)} s, ${s.imagesPerSecond.toFixed(1)} images/s, data wait ${(100 * s.dataWaitFraction).toFixed(1)}% of the train loop, ${s.loaderErrors} images skipped${s.modelDir ? `; model in ${s.modelDir}` : ''}\n`);
      ctx.stdout.write(JSON.stringify({ stage: o.stage, ...s }) + '\n');
      return 0;
    } catch (e) {
      p?.done();
      if (e instanceof NonFiniteLossError) {
        const last = lastCheckpoint(o.out);
        ctx.stderr.write(`casl train: ${e.message}. ${last ? `The last good checkpoint, step ${last.step}, is ${last.dir}` : 'No checkpoint was written yet'}; lower --lr or set --clip-norm, then rerun (with --resume to continue from it).\n`);
        return 1;
      }
      throw e;
    }
  },
};

/** Checks the merged options and names the key and the file when one is missing or out of range. */
function toTrainOptions(opts: Options, file: string): TrainOptions & { backend: string } {
  const need = <T>(key: string): T => {
    if (opts[key] === undefined) throw new UsageError(`${file}: key '${key}' is missing (set it there or pass --${key})`);
    return opts[key] as T;
  };
  const positive = (key: string): number => {
    const v = need<number>(key);
    if (!(v > 0)) throw new UsageError(`--${key} (or '${key}' in ${file}) must be positive, got ${v}`);
    return v;
  };
  const nonNegative = (key: string): number => {
    const v = need<number>(key);
    if (!(v >= 0)) throw new UsageError(`--${key} (or '${key}' in ${file}) must be ≥ 0, got ${v}`);
    return v;
  };
  const stage = need<StageName>('stage');
  if (!STAGES.includes(stage)) throw new UsageError(`${file}: key 'stage' must be one of ${STAGES.join('|')}, got '${stage}'`);
  const milestones = String(need<string>('milestones')).split(',').map((s) => s.trim()).filter(Boolean).map((s) => {
    const v = Number(s);
    if (!(v > 0 && v < 1)) throw new UsageError(`--milestones (or 'milestones' in ${file}): '${s}' is not a fraction of the run in (0, 1)`);
    return v;
  });
  const parts = (opts['init-parts'] as string[] | undefined) ?? [];
  for (const p of parts) if (!PARTS.includes(p as Part)) throw new UsageError(`--init-parts (or 'init-parts' in ${file}): unknown part '${p}' (choose from ${PARTS.join(', ')})`);
  const lrScale: Partial<Record<Part, number>> = {};
  for (const e of (opts['lr-scale'] as string[] | undefined) ?? []) {
    const m = /^([a-z]+)=(.+)$/.exec(String(e));
    const f = m ? Number(m[2]) : NaN;
    if (!m || !PARTS.includes(m[1] as Part) || !(f >= 0) || m[2].trim() === '') {
      throw new UsageError(`--lr-scale (or 'lr-scale' in ${file}): '${e}' is not PART=F with PART one of ${PARTS.join(', ')} and F ≥ 0 (e.g. backbone=0.1)`);
    }
    lrScale[m[1] as Part] = f;
  }
  const size = positive('size');
  if (size % 32 !== 0) throw new UsageError(`--size (or 'size' in ${file}) must be a multiple of 32, got ${size}`);
  const steps = nonNegative('steps');
  const epochs = nonNegative('epochs');
  if (steps === 0 && epochs === 0) throw new UsageError(`${file}: set 'steps' or 'epochs' to a positive number`);
  // init: '' is an explicit "from scratch" (the supervised baseline), like val: '' for no evaluation.
  const init = opts.init as string | undefined;
  if (stage === 'finetune' && init === undefined && !opts.resume) throw new UsageError(`${file}: finetune starts from the warmup model: set 'init' (e.g. runs/warmup/model) or pass --init; --init '' trains from scratch`);
  const val = opts.val as string | undefined;
  const train = need<string>('train');
  return {
    stage, train,
    root: opts.root as string | undefined,
    val: val ? val : undefined,
    valRoot: opts['val-root'] as string | undefined,
    out: need<string>('out'),
    model: need<string>('model'),
    size,
    batchSize: positive('batch-size'),
    steps, epochs,
    optimizer: need<'sgd' | 'adamw'>('optimizer'),
    lr: positive('lr'),
    momentum: nonNegative('momentum'),
    weightDecay: nonNegative('weight-decay'),
    schedule: need<'constant' | 'step' | 'cosine'>('schedule'),
    warmupSteps: nonNegative('warmup-steps'),
    warmupFactor: positive('warmup-factor'),
    milestones,
    gamma: positive('gamma'),
    clipNorm: nonNegative('clip-norm'),
    evalEvery: nonNegative('eval-every'),
    checkpointEvery: positive('checkpoint-every'),
    keepCheckpoints: nonNegative('keep-checkpoints'),
    seed: need<number>('seed'),
    aug: need<PolicyName>('aug'),
    prefetch: positive('prefetch'),
    concurrency: positive('concurrency'),
    resume: Boolean(opts.resume),
    init: init ? path.resolve(init) : undefined,
    initParts: parts as Part[],
    classifierInit: (opts['classifier-init'] as 'copy' | 'random' | undefined) ?? 'copy',
    lrScale,
    backend: (opts.backend as string | undefined) ?? 'auto',
    stopAt: opts['stop-at'] as number | undefined,
  };
}
