// The training loop shared by the three stages (labeler, warmup, finetune):
// loader → step (forward, FCOS loss, backward, clip, update) → metrics,
// checkpoints, periodic evaluation. Everything a run depends on is in its
// checkpoint (weights, optimizer slots, step, the loader's next sample), and
// every random choice is a function of the seed and the sample index, so a
// resumed run continues exactly as if never stopped.
//
// Run directory:
//   OUT/metrics.jsonl           one line per step (and one per evaluation)
//   OUT/checkpoints/step-N/     casl checkpoint (model.json + shards) + trainer.json
//   OUT/last-checkpoint.json    {"dir": "checkpoints/step-N", "step": N}, replaced atomically
//   OUT/model/                  the final weights, what the next stage reads
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import * as tf from '@tensorflow/tfjs-core';
import _ from 'highland';
import type { RgbImage } from '../augment/geometric.js';
import type { PolicyName } from '../augment/policy.js';
import { UsageError } from '../cli/command.js';
import { type Checkpoint, initFromCheckpoint, loadOptimizerInto, loadWeightsInto, readCheckpoint, saveCheckpoint } from '../model/checkpoint.js';
import { modelConfig } from '../model/config.js';
import { type Detector, createDetector, disposeDetector, forward } from '../model/detector.js';
import { fcosLoss } from '../model/loss.js';
import { addMaskLoss } from '../model/condinst/loss.js';
import { ADAMW_DEFAULTS, Optimizer, SGD_DEFAULTS } from '../model/optim.js';
import type { Part } from '../model/params.js';
import { makePoints } from '../model/points.js';
import { type ErrorRecord, isErrorRecord } from '../records.js';
import type { OrError, Stream } from '../streams/stage.js';
import { type EvalFigures, type ValSet, evaluateDetector, openValSet } from './evaluate.js';
import { type TrainBatch, trainBatches } from './loader.js';
import { type ScheduleConfig, learningRate } from './schedule.js';
import { type TrainSource, openCocoSource, openPseudoSource } from './source.js';

export type StageName = 'labeler' | 'warmup' | 'finetune';

export interface TrainOptions {
  stage: StageName;
  /** COCO JSON (labeler, finetune) or pseudo-label JSONL (warmup). */
  train: string;
  /** Where the training images are (default: the train file's folder). */
  root?: string;
  val?: string;
  valRoot?: string;
  out: string;
  model: string;
  size: number;
  batchSize: number;
  /** Length of the run: steps, or epochs of the source when steps is 0. */
  steps: number;
  epochs: number;
  optimizer: 'sgd' | 'adamw';
  lr: number;
  momentum: number;
  weightDecay: number;
  schedule: ScheduleConfig['kind'];
  warmupSteps: number;
  warmupFactor: number;
  /** 'step' milestones as fractions of the run. */
  milestones: number[];
  gamma: number;
  /** Global gradient-norm clip; 0 turns it off. */
  clipNorm: number;
  evalEvery: number;
  checkpointEvery: number;
  /** Checkpoints kept besides the last. */
  keepCheckpoints: number;
  seed: number;
  aug: PolicyName;
  prefetch: number;
  concurrency: number;
  resume: boolean;
  /** Checkpoint to initialise from (finetune: the warmup model). */
  init?: string;
  initParts: Part[];
  classifierInit: 'copy' | 'random';
  /** Learning-rate factor of a part (default 1); 0 freezes it. */
  lrScale?: Partial<Record<Part, number>>;
  /** The backend in use, as recorded in checkpoints and the summary. */
  backend: string;
  /** Stop after this many steps of the run without finishing it (as if killed): for tests and for splitting a run. */
  stopAt?: number;
  log?: (line: string) => void;
  /** Told the run's length, then each step as it finishes (a progress bar). */
  progress?: { setTotal(n: number): void; add(): void };
  decode?: (file: string) => Promise<RgbImage>;
}

export interface TrainSummary {
  steps: number;
  finished: boolean;
  wallSeconds: number;
  dataWaitSeconds: number;
  dataWaitFraction: number;
  imagesPerSecond: number;
  lastLoss: number;
  loaderErrors: number;
  eval?: EvalFigures;
  modelDir?: string;
  backend: string;
}

/** A run stopped by a non-finite loss: names the step and the checkpoint left intact. */
export class NonFiniteLossError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NonFiniteLossError';
  }
}

/** What trainer.json holds beside the model checkpoint. */
interface TrainerState {
  step: number;
  nextSample: number;
  seed: number;
  stage: StageName;
  totalSteps: number;
  dataWaitSeconds: number;
  computeSeconds: number;
  wallSeconds: number;
}

function writeDurable(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/** Share of the train loop's time (waiting for a batch + the step itself) spent waiting for data. */
function waitFraction(s: TrainerState): number {
  return s.dataWaitSeconds / Math.max(s.dataWaitSeconds + s.computeSeconds, 1e-9);
}

/** The checkpoint a resumed run starts from, or null when there is none yet. */
export function lastCheckpoint(out: string): { dir: string; step: number } | null {
  const ptr = path.join(out, 'last-checkpoint.json');
  if (!existsSync(ptr)) return null;
  const p = JSON.parse(readFileSync(ptr, 'utf8')) as { dir: string; step: number };
  return { dir: path.join(out, p.dir), step: p.step };
}

function openSource(o: TrainOptions): Promise<TrainSource> | TrainSource {
  // The stage decides what it reads: warmup only ever opens pseudo labels.
  if (o.stage === 'warmup') return openPseudoSource(o.train, o.root ?? path.dirname(o.train));
  return openCocoSource(o.train, o.root ?? path.dirname(o.train));
}

/** Pulls one item; end of stream is `undefined`. */
function pull<T>(s: Stream<T>): Promise<T | undefined> {
  return new Promise((resolve, reject) => {
    s.pull((err, x) => {
      if (err) reject(err);
      else resolve(_.isNil(x) ? undefined : (x as T));
    });
  });
}

/**
 * One optimisation step on a batch. The loss and the gradient norm are
 * read before the update: a non-finite one throws and leaves the weights
 * and the optimizer untouched.
 */
function step(det: Detector, opt: Optimizer, batch: TrainBatch, points: ReturnType<typeof makePoints>, lr: number, lrScale: Map<string, number>, clipNorm: number, stepNo: number): { total: number; cls: number; reg: number; ctr: number; mask?: number; gradNorm: number } {
  // A part at scale 0 is frozen: no gradient is computed for its parameters.
  const names = [...det.params.keys()].filter((n) => lrScale.get(n) !== 0);
  const byTfName = new Map(names.map((n) => [det.params.get(n)!.name, n]));
  const x = tf.tensor4d(batch.images, [batch.B, batch.S, batch.S, 3]);
  let parts: tf.Scalar[] = [];
  const { value, grads } = tf.variableGrads(() => {
    const out = forward(det, x);
    const l = fcosLoss(out, batch.targets, points);
    parts = [tf.keep(l.cls), tf.keep(l.reg), tf.keep(l.ctr)];
    if (!batch.masks) return l.total;
    const withMask = addMaskLoss(det.params, out, l.total, batch.masks, det.config.mask!);
    parts.push(tf.keep(withMask.mask));
    return withMask.total;
  }, names.map((n) => det.params.get(n)!));
  const gradList = Object.values(grads);
  try {
    const normT = tf.tidy(() => tf.sqrt(tf.addN(gradList.map((g) => tf.sum(tf.square(g))))));
    const [total, cls, reg, ctr, ...rest] = [value, ...parts, normT].map((t) => t.dataSync()[0]);
    const gradNorm = rest[rest.length - 1];
    const mask = rest.length > 1 ? rest[0] : undefined;
    normT.dispose();
    if (!Number.isFinite(total) || !Number.isFinite(gradNorm)) {
      throw new NonFiniteLossError(`step ${stepNo}: the loss is ${total} (cls ${cls}, reg ${reg}, ctr ${ctr}; gradient norm ${gradNorm}); stopped before the update`);
    }
    const named = new Map<string, tf.Tensor>();
    const scale = clipNorm > 0 && gradNorm > clipNorm ? clipNorm / (gradNorm + 1e-6) : 1;
    for (const [tfName, g] of Object.entries(grads)) named.set(byTfName.get(tfName)!, scale === 1 ? g : tf.mul(g, scale));
    opt.apply(det.params, named, lr, lrScale.size ? (n) => lrScale.get(n) ?? 1 : undefined);
    if (scale !== 1) tf.dispose([...named.values()]);
    return { total, cls, reg, ctr, ...(mask === undefined ? {} : { mask }), gradNorm };
  } finally {
    tf.dispose([x, value, ...parts, ...gradList]);
  }
}

export async function train(o: TrainOptions): Promise<TrainSummary> {
  const log = o.log ?? (() => {});
  mkdirSync(o.out, { recursive: true });
  const backend = o.backend;
  const source = await openSource(o);
  const closers: (() => unknown)[] = [() => source.close()];
  try {
    const agnostic = o.stage !== 'finetune';
    const K = agnostic ? 1 : source.categories.length;
    const classNames = agnostic ? ['object'] : source.categories.map((c) => c.name);
    const categoryIds = agnostic ? [1] : source.categories.map((c) => c.id);
    for (const e of source.errors.slice(0, 5)) log(`refused: ${e.error}`);
    if (source.errors.length > 5) log(`… ${source.errors.length - 5} more inputs refused`);
    log(`${o.stage}: ${source.size} images from ${o.train} (${source.kind}${source.empty ? `, ${source.empty} without annotations left out` : ''}, ${source.errors.length} refused), K = ${K}, backend ${backend}`);

    const cfg = modelConfig(o.model, { numClasses: K, inputSize: o.size });
    const det = createDetector(cfg, { seed: o.seed });
    closers.push(() => disposeDetector(det));
    const opt = new Optimizer(o.optimizer === 'sgd'
      ? { ...SGD_DEFAULTS, momentum: o.momentum, weightDecay: o.weightDecay }
      : { ...ADAMW_DEFAULTS, weightDecay: o.weightDecay });
    closers.push(() => opt.dispose());
    const totalSteps = o.steps > 0 ? o.steps : Math.ceil((o.epochs * source.size) / o.batchSize);
    const sched: ScheduleConfig = {
      lr: o.lr, kind: o.schedule, totalSteps, warmupSteps: o.warmupSteps, warmupFactor: o.warmupFactor,
      milestones: o.milestones.map((f) => Math.round(f * totalSteps)), gamma: o.gamma,
    };

    let state: TrainerState = { step: 0, nextSample: 0, seed: o.seed, stage: o.stage, totalSteps, dataWaitSeconds: 0, computeSeconds: 0, wallSeconds: 0 };
    const last = o.resume ? lastCheckpoint(o.out) : null;
    if (last) {
      const ckpt = readCheckpoint(last.dir);
      loadWeightsInto(det, ckpt);
      loadOptimizerInto(opt, ckpt);
      state = JSON.parse(readFileSync(path.join(last.dir, 'trainer.json'), 'utf8')) as TrainerState;
      if (state.seed !== o.seed || state.stage !== o.stage || state.totalSteps !== totalSteps) {
        throw new UsageError(`--resume: ${last.dir} is from a run with stage ${state.stage}, seed ${state.seed}, ${state.totalSteps} steps; this run asks stage ${o.stage}, seed ${o.seed}, ${totalSteps} steps. Use the same settings, or another --out`);
      }
      log(`resumed from ${last.dir} at step ${state.step} (sample ${state.nextSample})`);
    } else {
      if (o.resume) log(`--resume: no checkpoint in ${o.out} yet, starting from step 0`);
      // A fresh run owns its directory: checkpoints of an earlier run there would be resumed from or pruned wrongly.
      const stale = ['checkpoints', 'last-checkpoint.json', 'model', 'metrics.jsonl'].filter((f) => existsSync(path.join(o.out, f)));
      if (stale.length) log(`starting afresh in ${o.out}: removing the previous run's ${stale.join(', ')}`);
      for (const f of stale) rmSync(path.join(o.out, f), { recursive: true, force: true });
      if (o.init) {
        let init: Checkpoint;
        try {
          init = readCheckpoint(o.init);
        } catch (e) {
          throw new UsageError(`--init ${o.init}: ${(e as Error).message}`);
        }
        initFromCheckpoint(det, init, { take: o.initParts, classifier: o.classifierInit });
        log(`initialised ${o.initParts.join(', ')} from ${o.init} (classifier: ${o.initParts.includes('classifier') ? o.classifierInit : 'fresh'})`);
      }
    }
    const metricsFile = path.join(o.out, 'metrics.jsonl');
    // A resumed run rewrites the lines of steps it is about to redo.
    if (existsSync(metricsFile)) {
      const kept = readFileSync(metricsFile, 'utf8').split('\n').filter((l) => l && (JSON.parse(l) as { step: number }).step <= state.step);
      writeFileSync(metricsFile, kept.map((l) => l + '\n').join(''));
    }
    const metrics = openSync(metricsFile, 'a');
    closers.push(() => closeSync(metrics));
    const writeMetrics = (rec: object) => writeSync(metrics, JSON.stringify(rec) + '\n');

    let val: ValSet | undefined;
    if (o.val) {
      try {
        val = openValSet(o.val, o.valRoot, agnostic);
      } catch (e) {
        throw new UsageError(`--val ${o.val}: ${(e as Error).message} (give a COCO JSON, or --val '' for no evaluation)`);
      }
    }
    const lrScale = new Map<string, number>();
    for (const spec of det.specs) {
      const f = o.lrScale?.[spec.part];
      if (f !== undefined && f !== 1) lrScale.set(spec.name, f);
    }
    if (lrScale.size) log(`learning rate × ${Object.entries(o.lrScale!).map(([p, f]) => `${f} for the ${p}`).join(', ')}${Object.values(o.lrScale!).includes(0) ? ' (0: frozen)' : ''}`);
    const points = makePoints(cfg, o.size);
    const stopAt = Math.min(totalSteps, o.stopAt ?? totalSteps);
    const batches: Stream<OrError<TrainBatch>> = trainBatches(source, {
      batchSize: o.batchSize, size: o.size, policy: o.aug, seed: o.seed, classAgnostic: agnostic, points,
      centerRadius: cfg.centerRadius, startSample: state.nextSample, prefetch: o.prefetch, concurrency: o.concurrency, decode: o.decode, mask: cfg.mask,
    });
    closers.push(() => batches.destroy());

    const checkpoint = async () => {
      const rel = `checkpoints/step-${String(state.step).padStart(7, '0')}`;
      const dir = path.join(o.out, rel);
      await saveCheckpoint(dir, det, { classNames, stage: o.stage, step: state.step, optimizer: opt, backend });
      writeDurable(path.join(dir, 'trainer.json'), JSON.stringify(state));
      writeDurable(path.join(o.out, 'last-checkpoint.json'), JSON.stringify({ dir: rel, step: state.step }));
      const old = readdirSync(path.join(o.out, 'checkpoints')).filter((d) => /^step-\d+$/.test(d) && d !== path.basename(rel)).sort();
      for (const d of old.slice(0, Math.max(0, old.length - o.keepCheckpoints))) rmSync(path.join(o.out, 'checkpoints', d), { recursive: true, force: true });
    };
    const evaluate = async (): Promise<EvalFigures | undefined> => {
      if (!val) return undefined;
      const ev = await evaluateDetector(det, val, categoryIds, o.batchSize);
      writeMetrics({ step: state.step, eval: ev, metric: agnostic ? 'AP^det-a' : 'AP^det' });
      log(`step ${state.step}: ${agnostic ? 'AP^det-a' : 'AP^det'} ${ev.AP.toFixed(3)} (AP50 ${ev.AP50.toFixed(3)}, ${ev.images} val images, ${ev.seconds.toFixed(1)} s)`);
      return ev;
    };

    let loaderErrors = 0;
    let lastLoss = NaN;
    let lastEval: EvalFigures | undefined;
    o.progress?.setTotal(totalSteps - state.step);
    const runStart = performance.now();
    const wall0 = state.wallSeconds;
    const wait0 = state.dataWaitSeconds;
    const compute0 = state.computeSeconds;
    let imagesThisRun = 0;
    while (state.step < stopAt) {
      const w0 = performance.now();
      // Let the loader's finished decodes run before asking for the batch: that time is data time too.
      await yieldToLoop();
      let batch: OrError<TrainBatch> | undefined;
      for (;;) {
        batch = await pull(batches);
        if (batch === undefined || !isErrorRecord(batch)) break;
        loaderErrors++;
        const e: ErrorRecord = batch;
        writeMetrics({ step: state.step, error: e });
        log(`skipped ${e.file_name ?? '?'}: ${e.error}`);
      }
      if (batch === undefined) throw new Error('the training stream ended early (this is a bug: it is unbounded)');
      const waited = (performance.now() - w0) / 1000;
      const lr = learningRate(sched, state.step);
      const c0 = performance.now();
      const r = step(det, opt, batch, points, lr, lrScale, o.clipNorm, state.step + 1);
      const stepSeconds = (performance.now() - c0) / 1000;
      lastLoss = r.total;
      imagesThisRun += batch.B;
      state = {
        ...state, step: state.step + 1, nextSample: batch.nextSample,
        dataWaitSeconds: state.dataWaitSeconds + waited,
        computeSeconds: state.computeSeconds + stepSeconds,
        wallSeconds: wall0 + (performance.now() - runStart) / 1000,
      };
      writeMetrics({
        step: state.step, epoch: batch.epoch, loss: r.total, loss_cls: r.cls, loss_reg: r.reg, loss_ctr: r.ctr,
        ...(r.mask === undefined ? {} : { loss_mask: r.mask, mask_instances: batch.masks!.count }),
        lr, grad_norm: r.gradNorm, num_pos: batch.targets.numPos, instances: batch.instances,
        images_per_s: batch.B / (stepSeconds + waited), data_wait_s: waited, step_s: stepSeconds,
        data_wait_frac: waitFraction(state), tensors: tf.memory().numTensors,
      });
      o.progress?.add();
      if (state.step % o.checkpointEvery === 0 || state.step === totalSteps) await checkpoint();
      if (o.evalEvery > 0 && state.step % o.evalEvery === 0 && state.step !== totalSteps) lastEval = await evaluate();
    }
    const finished = state.step === totalSteps;
    let modelDir: string | undefined;
    if (finished) {
      lastEval = (await evaluate()) ?? lastEval;
      modelDir = path.join(o.out, 'model');
      await saveCheckpoint(modelDir, det, { classNames, stage: o.stage, step: state.step, backend });
    }
    const wall = (performance.now() - runStart) / 1000;
    return {
      steps: state.step, finished, backend,
      wallSeconds: wall,
      dataWaitSeconds: state.dataWaitSeconds - wait0,
      dataWaitFraction: (state.dataWaitSeconds - wait0) / Math.max(state.computeSeconds - compute0 + state.dataWaitSeconds - wait0, 1e-9),
      imagesPerSecond: imagesThisRun / Math.max(wall, 1e-9),
      lastLoss, loaderErrors, eval: lastEval, modelDir,
    };
  } finally {
    for (const c of closers.reverse()) await c();
  }
}
