// The CA-SSL experiment as a DAG of stages (README: The experiment). A stage
// is what one `casl` command (or one small in-process step) makes from its
// inputs; `config` is everything besides its inputs that decides its output
// (the base pipeline YAML included, so editing pipelines/finetune.yaml redoes
// the finetunes), `deps` names its inputs by role. The runner keys each
// stage's directory by a hash of both (cache.ts).
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { pipelineFile } from '../cli/options.js';
import { classesUsed, isDefaultMix, unlabeledMix } from '../fixtures/scene.js';
import { THING_CLASSES } from '../fixtures/shapes.js';
import type { Profile } from './profile.js';

export type StageKind = 'fixtures' | 'pretrain' | 'train' | 'pseudo-label' | 'select' | 'eval-agnostic';

export interface StageSpec {
  /** Readable name, unique in the plan, e.g. 'warmup/ca-ssl/seed-2'. */
  id: string;
  kind: StageKind;
  config: Record<string, unknown>;
  /** Input role → id of the stage that makes it. */
  deps: Record<string, string>;
}

/** Where a row's figures come from, per seed. */
export interface RowSeed {
  seed: number;
  /** Stage whose AP^det-a is the warmup column (absent for the baselines). */
  warmup?: string;
  finetune: string;
}

export interface Row {
  key: string;
  /** The paper's first column: what the warmup was trained on. */
  warmupData: string;
  seeds: RowSeed[];
}

export interface SweepRow {
  delta: number;
  fraction: number;
  select: string;
  warmup: string;
  finetune: string;
}

export interface Plan {
  profile: Profile;
  stages: StageSpec[];
  rows: Row[];
  sweep: SweepRow[];
  /** The baseline at the sweep's budget (finetune steps = sweep-steps), its reference. */
  sweepBaseline?: string;
  /** Stage whose pseudo.jsonl feeds the gallery (the class-agnostic labels at the lowest δ). */
  galleryPseudo: string;
}

export type BaseYaml = (stage: 'labeler' | 'warmup' | 'finetune' | 'pseudo-labels') => Record<string, unknown>;

/** The stage defaults as the checkout has them now. */
export const readBaseYaml: BaseYaml = (name) => parseYaml(readFileSync(pipelineFile(name), 'utf8')) as Record<string, unknown>;

// Not part of a stage's identity: the keys the runner fills from the inputs
// and the stage directory, and the throughput knobs (images in flight,
// checkpoint spacing), which change how fast a stage runs, not its result;
// retuning them must not throw the cache away.
const PATH_KEYS = ['train', 'root', 'val', 'val-root', 'out', 'init', 'resume', 'quiet', 'backend'];
const THROUGHPUT_KEYS = ['prefetch', 'concurrency', 'decode-concurrency', 'workers', 'checkpoint-every', 'keep-checkpoints'];

export function withoutThroughput(c: Record<string, unknown>): Record<string, unknown> {
  const out = { ...c };
  for (const k of THROUGHPUT_KEYS) delete out[k];
  return out;
}

function trainConfig(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const c: Record<string, unknown> = withoutThroughput({ ...base, ...over, 'eval-every': 0 });
  for (const k of PATH_KEYS) delete c[k];
  return c;
}

export function buildPlan(p: Profile, base: BaseYaml = readBaseYaml): Plan {
  const stages: StageSpec[] = [];
  const add = (s: StageSpec): string => {
    if (stages.some((x) => x.id === s.id)) throw new Error(`plan: stage id '${s.id}' twice`);
    stages.push(s);
    return s.id;
  };
  const common = { size: p.size, 'batch-size': p.batchSize };
  // data: which training set; from: the pipelines/<from>.yaml settings used.
  type TrainInit = { parts: string[]; classifier: 'copy' | 'random'; lrScale: string[] };
  type TrainOpts = { stage: 'labeler' | 'warmup' | 'finetune'; from: 'labeler' | 'warmup' | 'finetune'; steps: number; seed: number; data: 'labeled' | 'pseudo' | 'pseudo-coco'; deps?: Record<string, string>; init?: TrainInit };
  const trainCfg = (o: TrainOpts): Record<string, unknown> => {
    const config: Record<string, unknown> = {
      ...trainConfig(base(o.from), { ...common, stage: o.stage, steps: o.steps, seed: o.seed }),
      data: o.data,
      'init-parts': o.init?.parts ?? [],
      'classifier-init': o.init?.classifier ?? 'copy',
    };
    // Part-wise learning rates are about what came from the warmup: a model
    // from scratch (the baselines) trains every part at the full rate.
    delete config['lr-scale'];
    if (o.init?.lrScale.length) config['lr-scale'] = o.init.lrScale;
    return config;
  };
  // The pretrained start: a K-class detector on scenes of the shapes the
  // experiment never uses (the paper's detectors start from an ImageNet
  // backbone); every model that would start from scratch takes its backbone.
  const usedClasses = classesUsed(p.mix);
  let pretrain: string | undefined;
  if (p.pretrainSteps > 0) {
    const fixtures = { seed: 2, classes: THING_CLASSES.length, 'skip-classes': usedClasses, labeled: p.pretrainImages, unlabeled: 0, val: 200 };
    pretrain = add({ id: 'pretrain', kind: 'pretrain', config: { ...trainCfg({ stage: 'finetune', from: 'finetune', steps: p.pretrainSteps, seed: 1, data: 'labeled' }), fixtures }, deps: {} });
  }
  const FROM_PRETRAIN: TrainInit = { parts: ['backbone'], classifier: 'random', lrScale: [] };
  const train = (id: string, o: TrainOpts): string => {
    const fromPretrain = pretrain !== undefined && o.deps?.init === undefined;
    const deps = { fixtures: 'fixtures', ...o.deps, ...(fromPretrain ? { init: pretrain } : {}) };
    return add({ id, kind: 'train', config: trainCfg(fromPretrain ? { ...o, init: FROM_PRETRAIN } : o), deps });
  };
  // What a finetune takes from its warmup: pipelines/finetune.yaml's choice.
  const ftBase = base('finetune');
  const FROM_WARMUP = {
    parts: (ftBase['init-parts'] as string[] | undefined) ?? ['backbone', 'neck', 'head', 'classifier'],
    classifier: (ftBase['classifier-init'] as 'copy' | 'random' | undefined) ?? 'copy',
    lrScale: (ftBase['lr-scale'] as string[] | undefined) ?? [],
  };

  // The class mix is named only when not the default, so the six-class
  // experiment keeps its cache keys.
  const u = unlabeledMix(p.mix).count;
  const mix = isDefaultMix(p.mix) ? {} : { classes: p.mix.count, 'class-tail': p.mix.tail, ...(u === p.mix.count ? {} : { 'unlabeled-classes': u }) };
  add({ id: 'fixtures', kind: 'fixtures', config: { seed: 1, ...mix }, deps: {} });
  const labeler = train('labeler', { stage: 'labeler', from: 'labeler', steps: p.labelerSteps, seed: 1, data: 'labeled' });
  // The class-specific labeler: the same budget and settings as the
  // class-agnostic one, but K classes (the finetune stage from scratch).
  const labelerK = train('labeler-k', { stage: 'finetune', from: 'labeler', steps: p.labelerSteps, seed: 1, data: 'labeled' });

  const deltas = [p.delta, ...p.sweepDeltas, ...p.galleryDeltas];
  const deltaMin = Math.min(...deltas);
  const pseudoCfg = { ...withoutThroughput(base('pseudo-labels')), delta: deltaMin, shards: p.unlabeledShards };
  const pseudo = add({ id: 'pseudo/agnostic', kind: 'pseudo-label', config: pseudoCfg, deps: { fixtures: 'fixtures', model: labeler } });
  const pseudoK = add({ id: 'pseudo/specific', kind: 'pseudo-label', config: { ...pseudoCfg, delta: p.delta }, deps: { fixtures: 'fixtures', model: labelerK } });
  const select = (id: string, from: string, delta: number, fraction: number, format: 'jsonl' | 'coco'): string =>
    add({ id, kind: 'select', config: { delta, fraction, format }, deps: { fixtures: 'fixtures', pseudo: from } });
  const selCa = select('select/agnostic', pseudo, p.delta, 1, 'jsonl');
  const selCs = select('select/specific', pseudoK, p.delta, 1, 'coco');

  const start = pretrain ? `from a backbone pretrained on ${THING_CLASSES.length - usedClasses} other shapes` : 'from scratch';
  const rows: Row[] = [
    { key: 'baseline', warmupData: `none (labeled GT only, ${start})`, seeds: [] },
    { key: 'ca-ssl', warmupData: `class-agnostic pseudo labels (δ = ${p.delta}) — CA-SSL`, seeds: [] },
    { key: 'cs-pseudo', warmupData: `class-specific pseudo labels (δ = ${p.delta})`, seeds: [] },
    { key: 'ca-gt', warmupData: 'class-agnostic GT of the labeled split', seeds: [] },
  ];
  const row = (k: string): Row => rows.find((r) => r.key === k)!;
  for (const seed of p.seeds) {
    const s = `seed-${seed}`;
    // The K-class labeler is the seed-1 baseline when their budgets agree: the
    // cache runs it once.
    row('baseline').seeds.push({ seed, finetune: train(`baseline/${s}`, { stage: 'finetune', from: 'finetune', steps: p.finetuneSteps, seed, data: 'labeled' }) });
    const w = train(`warmup/ca-ssl/${s}`, { stage: 'warmup', from: 'warmup', steps: p.warmupSteps, seed, data: 'pseudo', deps: { data: selCa } });
    row('ca-ssl').seeds.push({ seed, warmup: w, finetune: train(`finetune/ca-ssl/${s}`, { stage: 'finetune', from: 'finetune', steps: p.finetuneSteps, seed, data: 'labeled', deps: { init: w }, init: FROM_WARMUP }) });
    // Class-specific warmup: the warmup's settings with K classes, on the
    // K-class labeler's pseudo labels written as COCO (the warmup stage
    // itself is K = 1 by construction).
    const wk = train(`warmup/cs-pseudo/${s}`, { stage: 'finetune', from: 'warmup', steps: p.warmupSteps, seed, data: 'pseudo-coco', deps: { data: selCs } });
    const wkEval = add({ id: `eval-agnostic/cs-pseudo/${s}`, kind: 'eval-agnostic', config: { ...withoutThroughput(base('pseudo-labels')), delta: 0 }, deps: { fixtures: 'fixtures', model: wk } });
    row('cs-pseudo').seeds.push({ seed, warmup: wkEval, finetune: train(`finetune/cs-pseudo/${s}`, { stage: 'finetune', from: 'finetune', steps: p.finetuneSteps, seed, data: 'labeled', deps: { init: wk }, init: FROM_WARMUP }) });
    row('ca-gt').seeds.push({ seed, warmup: labeler, finetune: train(`finetune/ca-gt/${s}`, { stage: 'finetune', from: 'finetune', steps: p.finetuneSteps, seed, data: 'labeled', deps: { init: labeler }, init: FROM_WARMUP }) });
  }
  if (p.baselineLongSeeds.length > 0) {
    const long: Row = { key: 'baseline-long', warmupData: `none, ${start} with ${p.warmupSteps + p.finetuneSteps} steps (= warmup + finetune)`, seeds: [] };
    for (const seed of p.baselineLongSeeds) {
      long.seeds.push({ seed, finetune: train(`baseline-long/seed-${seed}`, { stage: 'finetune', from: 'finetune', steps: p.warmupSteps + p.finetuneSteps, seed, data: 'labeled' }) });
    }
    rows.push(long);
  }

  const sweep: SweepRow[] = [];
  let sweepBaseline: string | undefined;
  if (p.sweepSteps > 0) {
    sweepBaseline = train('baseline/sweep', { stage: 'finetune', from: 'finetune', steps: p.sweepSteps, seed: 1, data: 'labeled' });
    const points: [number, number][] = [];
    for (const d of p.sweepDeltas) points.push([d, 1]);
    for (const f of p.sweepFractions) points.push([p.delta, f]);
    for (const [d, f] of points) {
      if (sweep.some((x) => x.delta === d && x.fraction === f)) continue;
      const tag = `delta-${d}/fraction-${f}`;
      const sel = select(`select/sweep/${tag}`, pseudo, d, f, 'jsonl');
      const w = train(`warmup/sweep/${tag}`, { stage: 'warmup', from: 'warmup', steps: p.sweepSteps, seed: 1, data: 'pseudo', deps: { data: sel } });
      const ft = train(`finetune/sweep/${tag}`, { stage: 'finetune', from: 'finetune', steps: p.sweepSteps, seed: 1, data: 'labeled', deps: { init: w }, init: FROM_WARMUP });
      sweep.push({ delta: d, fraction: f, select: sel, warmup: w, finetune: ft });
    }
  }
  return { profile: p, stages, rows, sweep, sweepBaseline, galleryPseudo: pseudo };
}
